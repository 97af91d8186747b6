"""Do GIoU box terms tighten the demo detector's boxes? The box loss, measured at the demo's shape.

KITTI's car AP counts a detection only above IoU 0.7, where squared-error box terms (the study's
section 4.4, `detector.train.box_loss: mse`) need not be the best target. Each variant trains
both runs (transfer and scratch, seed 0) through the stage scripts on the demo's frames and
split at the demo's input shape, anchors and epochs, from the same init weights, as
`detector_input_shapes.py` does, and changes the box loss only.

    dvc repro init_detector   # the demo's frames, split and init weights
    python bench/detector_box_loss.py

prints per variant the best val AP@0.5 of each run and the test figures of the best checkpoints
(AP@0.5, AP@[.5:.95], all-cars AP40 at IoU 0.7, KITTI moderate AP40, each with its frame-bootstrap
95% interval), and writes bench/results/detector_box_loss.json.
"""

import argparse
import shutil
from pathlib import Path

import torch
import yaml
from detector_input_shapes import RUNS, cell, run_variant
from timing import write_results

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("mse", "giou")  # the demo's first
COLUMNS = ("AP50", "AP50_95", "AP40_iou70_all_truths", "kitti_AP40_moderate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/detector_box_loss", help="scratch folder")
    parser.add_argument("--out", default=str(ROOT / "bench/results/detector_box_loss.json"))
    args = parser.parse_args()

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["detector"]["seeds"] = [0]
    frames = str(ROOT / raw["data"]["frames"])
    results = {}
    for loss in VARIANTS:
        raw["detector"]["train"]["box_loss"] = loss
        work = Path(args.work) / loss
        shutil.rmtree(work, ignore_errors=True)
        results[loss] = run_variant(work, raw, frames)
        print(f"{loss}: val AP50 {results[loss]['val_best_AP50']}")
    write_results(
        args.out,
        torch.device("cpu"),
        frames=raw["data"]["frames"],
        cfg=raw["detector"]["cfg"],
        img_size=raw["detector"]["img_size"],
        variants=results,
    )
    print(
        "| box loss | run | val AP@0.5 | test AP@0.5 | AP@[.5:.95] | AP40 at IoU 0.7 "
        "| KITTI moderate |"
    )
    print("|---" * 7 + "|")
    for loss, row in results.items():
        for run in RUNS:
            test = row["test"][run]
            print(
                f"| {loss} | {run} | {row['val_best_AP50'][run]:.3f} | "
                + " | ".join(cell(test[c]) for c in COLUMNS)
                + " |"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
