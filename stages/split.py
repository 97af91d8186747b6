"""Stage `split`: assign crops to train/val/test, whole frames at a time, stratified by class."""

import argparse
from collections import defaultdict
from pathlib import Path

from kitti_pipeline.crops import MANIFEST_FIELDS
from kitti_pipeline.files import read_csv, write_csv
from kitti_pipeline.params import load_params
from kitti_pipeline.splits import split_frames


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--crops", required=True, help="crops folder with manifest.csv")
    parser.add_argument("--out", required=True, help="split CSV: the manifest plus a split column")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    cfg = params.split

    rows = read_csv(Path(args.crops) / "manifest.csv")
    frame_classes = defaultdict(list)
    for row in rows:
        frame_classes[row["frame"]].append(row["class"])
    assignment = split_frames(
        dict(frame_classes),
        params.data.classes,
        cfg.train_crops,
        cfg.val_crops,
        cfg.test_crops,
        cfg.seed,
    )
    write_csv(
        args.out,
        [{**r, "split": assignment[r["frame"]]} for r in rows],
        [*MANIFEST_FIELDS, "split"],
    )


if __name__ == "__main__":
    main()
