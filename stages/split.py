"""Stage `split`: assign crops to train/val/test, whole frames at a time, stratified by class."""

from pathlib import Path

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import read_csv, write_csv
from kitti_pipeline.data.crops import MANIFEST_FIELDS
from kitti_pipeline.data.splits import split_rows


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        crops="crops folder with manifest.csv",
        out="split CSV: the manifest plus a split column",
    )
    rows = read_csv(Path(args.crops) / "manifest.csv")
    write_csv(
        args.out, split_rows(rows, params.data.classes, params.split), [*MANIFEST_FIELDS, "split"]
    )


if __name__ == "__main__":
    run_cli(main)
