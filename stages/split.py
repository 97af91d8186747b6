"""Stage `split`: assign crops to train/val/test, whole frames at a time (whole drives where the
frames folder has `drives.csv`), stratified by class; and every frame to the detector's split,
leaving out those the crop stage skipped bad input of."""

from pathlib import Path

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import read_csv, write_csv
from kitti_pipeline.data.crops import IMAGE_SUFFIXES, MANIFEST_FIELDS
from kitti_pipeline.data.splits import (
    DRIVES_FILE,
    FRAME_SPLIT_FIELDS,
    LEFT_OUT,
    frame_split,
    split_rows,
)


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        crops="crops folder with manifest.csv and skipped.csv",
        frames="frames folder: images/, labels/",
        out="split CSV: the manifest plus a split column",
        frame_split="frame split CSV: every frame, its split for the detector, or left_out",
    )
    drives_file = Path(args.frames) / DRIVES_FILE  # written by `kitti-subset --mapping`
    drives = (
        {r["frame"]: r["drive"] for r in read_csv(drives_file)} if drives_file.exists() else None
    )
    manifest = read_csv(Path(args.crops) / "manifest.csv")
    rows = split_rows(manifest, params.data.classes, params.split, drives)
    images = (Path(args.frames) / "images").iterdir()
    stems = sorted(p.stem for p in images if p.suffix.lower() in IMAGE_SUFFIXES)
    frames = frame_split(rows, stems, read_csv(Path(args.crops) / "skipped.csv"), drives)
    write_csv(args.out, rows, [*MANIFEST_FIELDS, "split"])
    write_csv(args.frame_split, frames, FRAME_SPLIT_FIELDS)
    left_out = [r for r in frames if r["split"] == LEFT_OUT]
    if left_out:
        print(
            f"split: {len(left_out)} frames left out of the detector's splits for bad input "
            f"(listed in {args.frame_split}), the first: {left_out[0]['frame']} "
            f"({left_out[0]['reason']})"
        )


if __name__ == "__main__":
    run_cli(main)
