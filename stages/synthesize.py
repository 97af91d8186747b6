"""Stage `synthesize`: generate the KITTI-like demo dataset.

Writes `images/NNNNNN.png`, `labels/NNNNNN.txt` (YOLO format), `classes.txt` and, when
`synthesize.kitti_labels` is set, `label_2/NNNNNN.txt` in KITTI's native format. Frames are drawn
and written by one process per CPU core (started fresh, not forked from a process that may hold
torch's threads); each depends on its index alone, so the files are the same whatever the number
of processes.
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from functools import partial

from rich.progress import track

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import atomic_dir
from kitti_pipeline.core.params import SynthesizeParams
from kitti_pipeline.data.synthetic import write_synthetic_frame


def main(argv=None):
    args, params = parse_stage(__doc__, argv, out="frames folder to create")
    cfg, classes = params.synthesize, params.data.classes
    if sorted(cfg.class_mix) != sorted(classes):
        raise ValueError(
            f"synthesize.class_mix names {sorted(cfg.class_mix)}, "
            f"but data.classes is {list(classes)}"
        )
    with (
        atomic_dir(args.out) as out,
        ProcessPoolExecutor(mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        for sub in ("images", "labels", *(["label_2"] if cfg.kitti_labels else [])):
            (out / sub).mkdir()
        (out / "classes.txt").write_text("\n".join(classes) + "\n")
        # The workers get plain params: a caller may pass a subclass that does not pickle.
        plain = SynthesizeParams(**asdict(cfg))
        written = pool.map(partial(write_synthetic_frame, out, plain, classes), range(cfg.frames))
        for _ in track(written, total=cfg.frames, description="synthesize"):
            pass


if __name__ == "__main__":
    run_cli(main)
