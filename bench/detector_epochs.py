"""How long should the demo's detector train? Val and test figures against the epoch budget.

The demo trains the detector far shorter than the study (200 epochs) to fit a CPU, and its val
AP was still rising at the last checkpoint. Each budget trains both runs (transfer and scratch,
seed 0) through the stage scripts on the demo's frames and split, at the demo's input shape,
anchors and box loss, from the same init weights, as `detector_input_shapes.py` does, and
changes `detector.train.epochs` only.

    dvc repro init_detector   # the demo's frames, split and init weights
    python bench/detector_epochs.py

prints per budget the training seconds, val AP@0.5 at every evaluated epoch of each run, and the
test figures of the best checkpoints (AP@0.5, AP@[.5:.95], AP40 at IoU 0.7, KITTI moderate, with
frame-bootstrap 95% intervals; transfer - scratch with its paired interval), and writes
bench/results/detector_epochs.json.
"""

import argparse
import shutil
from pathlib import Path

import torch
import yaml
from detector_box_loss import COLUMNS
from detector_input_shapes import RUNS, cell, run_variant
from timing import write_results

from kitti_pipeline.core.files import read_csv

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = (16, 32, 48)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", nargs="*", type=int, default=list(BUDGETS))
    parser.add_argument("--work", default="/tmp/detector_epochs", help="scratch folder")
    parser.add_argument("--out", default=str(ROOT / "bench/results/detector_epochs.json"))
    args = parser.parse_args()

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["detector"]["seeds"] = [0]
    frames = str(ROOT / raw["data"]["frames"])
    results = {}
    for epochs in args.epochs:
        raw["detector"]["train"]["epochs"] = epochs
        work = Path(args.work) / str(epochs)
        shutil.rmtree(work, ignore_errors=True)
        row = run_variant(work, raw, frames)
        row["val_AP50_curve"] = {
            run: {
                int(r["epoch"]): float(r["AP50"])
                for r in read_csv(work / f"history/{run}.csv")
                if r["AP50"]
            }
            for run in RUNS
        }
        curves = row["val_AP50_curve"]
        row["transfer_ahead_at_every_checkpoint"] = all(
            curves["transfer"][e] > curves["scratch"][e] for e in curves["transfer"]
        )
        results[epochs] = row
        print(f"{epochs} epochs: {row['train_seconds']} s; val AP50 {curves}")
    write_results(
        args.out,
        torch.device("cpu"),
        frames=raw["data"]["frames"],
        cfg=raw["detector"]["cfg"],
        img_size=raw["detector"]["img_size"],
        budgets=results,
    )
    print(
        "| epochs | run | train s | val AP@0.5 per checkpoint | test AP@0.5 | AP@[.5:.95] "
        "| AP40 at IoU 0.7 | KITTI moderate | transfer - scratch AP@0.5 |"
    )
    print("|---" * 9 + "|")
    for epochs, row in results.items():
        gap = row["transfer-scratch"]["AP50"]
        for run in RUNS:
            curve = row["val_AP50_curve"][run]
            test = row["test"][run]
            diff = f"{gap['difference']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}]"
            print(
                f"| {epochs} | {run} | {row['train_seconds'][run]:.0f} | "
                + " / ".join(f"{curve[e]:.3f}" for e in sorted(curve))
                + " | "
                + " | ".join(cell(test[c]) for c in COLUMNS)
                + f" | {diff if run == 'transfer' else ''} |"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
