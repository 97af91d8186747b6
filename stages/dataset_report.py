"""Stage `dataset_report`: Table 1 (crops per split and class) and a figure of training crops."""

import json
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
from PIL import Image

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import atomic_path, read_csv, write_json
from kitti_pipeline.data.splits import dataset_metrics, example_rows
from kitti_pipeline.report.figures import crop_grid

EXAMPLES_PER_CLASS = 8


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        crops="crops folder with summary.json",
        split="split CSV from the split stage",
        frame_split="the frame split CSV from the split stage",
        metrics="dataset metrics JSON to write",
        figure="PNG of example training crops",
    )
    classes, cfg = params.data.classes, params.split
    rows = read_csv(args.split)
    summary = json.loads((Path(args.crops) / "summary.json").read_text())
    frame_rows = read_csv(args.frame_split)
    write_json(args.metrics, dataset_metrics(rows, frame_rows, summary, classes, cfg))

    picked = example_rows(rows, classes, cfg.seed, EXAMPLES_PER_CLASS)
    images = [Image.open(Path(args.crops) / r["crop"]).convert("RGB") for r in picked]
    fig = crop_grid(images, [r["class"] for r in picked], columns=EXAMPLES_PER_CLASS)
    with atomic_path(args.figure) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    print("dataset_report:", dict(Counter(r["split"] for r in rows)))


if __name__ == "__main__":
    run_cli(main)
