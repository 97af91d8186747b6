"""Stage `synthesize`: generate the KITTI-like demo dataset.

Writes `images/NNNNNN.png`, `labels/NNNNNN.txt` (YOLO format), `classes.txt` and, when
`synthesize.kitti_labels` is set, `label_2/NNNNNN.txt` in KITTI's native format.
"""

from pathlib import Path

from rich.progress import track

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import atomic_dir
from kitti_pipeline.data.synthetic import synthetic_frame


def main(argv=None):
    args, params = parse_stage(__doc__, argv, out="frames folder to create")
    cfg, classes = params.synthesize, params.data.classes
    if sorted(cfg.class_mix) != sorted(classes):
        raise ValueError(
            f"synthesize.class_mix names {sorted(cfg.class_mix)}, "
            f"but data.classes is {list(classes)}"
        )
    with atomic_dir(args.out) as out:
        for sub in ("images", "labels", *(["label_2"] if cfg.kitti_labels else [])):
            (out / sub).mkdir()
        (out / "classes.txt").write_text("\n".join(classes) + "\n")
        for i in track(range(cfg.frames), description="synthesize"):
            image, yolo, kitti = synthetic_frame(cfg, classes, i)
            image.save(out / "images" / f"{i:06d}.png")
            _write_lines(out / "labels" / f"{i:06d}.txt", yolo)
            if cfg.kitti_labels:
                _write_lines(out / "label_2" / f"{i:06d}.txt", kitti)


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


if __name__ == "__main__":
    run_cli(main)
