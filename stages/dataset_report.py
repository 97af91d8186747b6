"""Stage `dataset_report`: Table 1 (crops per split and class) and a figure of training crops."""

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from kitti_pipeline.figures import crop_grid
from kitti_pipeline.files import atomic_path, read_csv, write_json
from kitti_pipeline.params import load_params
from kitti_pipeline.splits import SPLITS, count_table

EXAMPLES_PER_CLASS = 8


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--crops", required=True, help="crops folder with summary.json")
    parser.add_argument("--split", required=True, help="split CSV from the split stage")
    parser.add_argument("--metrics", required=True, help="dataset metrics JSON to write")
    parser.add_argument("--figure", required=True, help="PNG of example training crops")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    classes, cfg = params.data.classes, params.split

    rows = read_csv(args.split)
    summary = json.loads((Path(args.crops) / "summary.json").read_text())
    frames = {s: len({r["frame"] for r in rows if r["split"] == s}) for s in SPLITS}
    write_json(
        args.metrics,
        {
            "crops": count_table(rows, classes),
            "frames": {**frames, "read": summary["frames"]},
            "requested": {"train": cfg.train_crops, "val": cfg.val_crops, "test": cfg.test_crops},
            "skipped": {"total": sum(summary["skipped"].values()), **summary["skipped"]},
        },
    )

    # A few random training crops of every class, so rare classes show up too.
    rng = np.random.default_rng(cfg.seed)
    picked = []
    for name in classes:
        of_class = [r for r in rows if r["split"] == "train" and r["class"] == name]
        picks = rng.permutation(len(of_class))[:EXAMPLES_PER_CLASS]
        picked += [of_class[i] for i in sorted(picks)]
    images = [Image.open(Path(args.crops) / r["crop"]).convert("RGB") for r in picked]
    fig = crop_grid(images, [r["class"] for r in picked], columns=EXAMPLES_PER_CLASS)
    with atomic_path(args.figure) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    print("dataset_report:", dict(Counter(r["split"] for r in rows)))


if __name__ == "__main__":
    main()
