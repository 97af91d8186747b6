"""Stage `synthesize`: generate the KITTI-like demo dataset.

Writes `images/NNNNNN.png`, `labels/NNNNNN.txt` (YOLO format), `classes.txt` and, when
`synthesize.kitti_labels` is set, `label_2/NNNNNN.txt` in KITTI's native format.
"""

import argparse
from pathlib import Path

import numpy as np
from rich.progress import track

from kitti_pipeline.boxes import normalise
from kitti_pipeline.files import atomic_dir
from kitti_pipeline.labels import format_kitti_line, format_yolo_line
from kitti_pipeline.params import load_params
from kitti_pipeline.synthetic import render_frame


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="frames folder to create")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    cfg, classes = params.synthesize, params.data.classes
    if sorted(cfg.class_mix) != sorted(classes):
        raise SystemExit(
            f"synthesize.class_mix names {sorted(cfg.class_mix)}, "
            f"but data.classes is {list(classes)}"
        )

    with atomic_dir(args.out) as out:
        for sub in ("images", "labels", *(["label_2"] if cfg.kitti_labels else [])):
            (out / sub).mkdir()
        (out / "classes.txt").write_text("\n".join(classes) + "\n")
        for i in track(range(cfg.frames), description="synthesize"):
            # One generator per frame: frame i is the same whatever the number of frames.
            rng = np.random.default_rng([cfg.seed, i])
            image, objects = render_frame(
                rng, cfg.width, cfg.height, cfg.objects_per_frame, cfg.class_mix
            )
            stem = f"{i:06d}"
            image.save(out / "images" / f"{stem}.png")
            yolo = [
                format_yolo_line(
                    classes.index(o.class_name), *normalise(o.visible_box, cfg.width, cfg.height)
                )
                for o in objects
            ]
            _write_lines(out / "labels" / f"{stem}.txt", yolo)
            if cfg.kitti_labels:
                _write_lines(
                    out / "label_2" / f"{stem}.txt",
                    [format_kitti_line(o.to_kitti()) for o in objects],
                )


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


if __name__ == "__main__":
    main()
