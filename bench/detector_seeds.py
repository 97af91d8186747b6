"""Does the detector's transfer run beat scratch over seeds, not in one run?

One demo run holds one pretraining of the COCO stand-in and one training of each detector run.
This bench repeats them over seeds: for each seed s, the stand-in is pretrained from s through
`init_detector` (`detector.init.seed: s`, the demo's budget), and both runs train from s through
`train_detector` with the demo's params (transfer from that stand-in, scratch from random
weights), on the demo's frames and split, and are evaluated as the pipeline evaluates them.

    dvc repro detector_anchors   # the demo's frames, split and data/detector.cfg
    python bench/detector_seeds.py --seeds 0 1 2

`--params` and `--split` run it on other params and another split of the same frames (one made by
`python stages/split.py --params P --crops data/crops --frames data/synthetic --out S.csv
--frame-split S`); both runs still train from
data/detector.cfg, whose anchors come from the demo's split under `detector.anchors: dataset`. It
prints, per evaluated epoch, each seed's val AP@0.5 of both runs and their mean difference over
seeds with a 95% t-interval (seeds the unit); and on test, transfer - scratch at the best
checkpoints in AP@0.5, AP@[.5:.95] and KITTI moderate AP40 from `compare_detectors` over all the
seeds (each draw resamples the test frames and each run's seeds, as `detector.seeds` does in the
pipeline); and writes bench/results/detector_seeds.json (or `--out`).
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from detector_input_shapes import RUNS, cell, stage
from detector_stand_in_tradeoff import train_and_score
from scipy import stats
from timing import write_results

from kitti_pipeline.core.files import read_csv

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("AP50", "AP50_95", "kitti_AP40_moderate")


def over_seeds(differences: list[float]) -> dict:
    """Mean of per-seed paired differences with its 95% t-interval (seeds as the unit)."""
    values = np.asarray(differences)
    mean = float(values.mean())
    half = float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))
    return {
        "mean": mean,
        "low": mean - half,
        "high": mean + half,
        "resolved": bool(mean - half > 0 or mean + half < 0),
        "wins": int((values > 0).sum()),
        "seeds": len(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--work", default="/tmp/detector_seeds", help="scratch folder")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument(
        "--split",
        default=str(ROOT / "data/frame_split.csv"),
        help="a frame split (the split stage's --frame-split)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench/results/detector_seeds.json"))
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("--seeds: an interval over seeds needs at least two")

    raw = yaml.safe_load(Path(args.params).read_text())
    rows = read_csv(args.split)
    raw["detector"]["seeds"] = args.seeds
    frames = str(ROOT / raw["data"]["frames"])
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    matches = work / "matches"
    matches.mkdir(parents=True)
    per_seed = []
    for seed in args.seeds:
        here = work / f"s{seed}"
        here.mkdir()
        raw["detector"]["init"]["seed"] = seed
        params = here / "params.yaml"
        params.write_text(yaml.safe_dump(raw))
        began = time.perf_counter()
        stage(
            "init_detector", params, "--out", here / "init.weights", "--metrics", here / "init.json"
        )
        row = {
            "seed": seed,
            "pretrain_seconds": round(time.perf_counter() - began, 1),
            "held_out_mAP50": json.loads((here / "init.json").read_text())["held_out_mAP50"],
        }
        for run in RUNS:
            init = here if run == "transfer" else None
            row[run] = train_and_score(here / run, params, frames, run, init, seed, args.split)
            best = json.loads((here / run / "metrics.json").read_text())["best"]
            row[run]["test_best"] = {
                "epoch": best["epoch"],
                "AP50": best["Car"]["AP50"],
                "kitti_AP40_moderate": best["Car"]["kitti_AP40"]["moderate"],
            }
            shutil.copy(here / run / f"matches/{run}-s{seed}.json", matches)
        per_seed.append(row)
        print(
            f"seed {seed}: val AP50 transfer {row['transfer']['val_AP50']}, "
            f"scratch {row['scratch']['val_AP50']}; test at the best checkpoints "
            f"{ {run: row[run]['test_best'] for run in RUNS} }"
        )
    stage("compare_detectors", params, "--matches", matches, "--out", work / "cmp.json")
    comparison = json.loads((work / "cmp.json").read_text())

    epochs = sorted(per_seed[0]["transfer"]["val_AP50"])
    val = {}
    for epoch in epochs:
        pairs = [
            (row["transfer"]["val_AP50"][epoch], row["scratch"]["val_AP50"][epoch])
            for row in per_seed
        ]
        val[epoch] = {
            "transfer": float(np.mean([t for t, _ in pairs])),
            "scratch": float(np.mean([s for _, s in pairs])),
            "transfer-scratch": over_seeds([t - s for t, s in pairs]),
        }
    test = {
        "arms": {run: {m: comparison["arms"][run]["best"][m] for m in METRICS} for run in RUNS},
        "transfer-scratch": {m: comparison["transfer-scratch"][m] for m in METRICS},
    }
    write_results(
        args.out,
        torch.device("cpu"),
        frames=raw["data"]["frames"],
        frames_with_crops={
            name: len({r["frame"] for r in rows if r["split"] == name})
            for name in ("train", "val", "test")
        },
        img_size=raw["detector"]["img_size"],
        epochs=raw["detector"]["train"]["epochs"],
        pretrain=f"{raw['detector']['init']['pretrain_frames']} scenes x "
        f"{raw['detector']['init']['pretrain_epochs']} epochs",
        seeds=args.seeds,
        per_seed=per_seed,
        val=val,
        test=test,
    )
    print(
        "| epoch | val AP@0.5 transfer, per seed | scratch, per seed "
        "| transfer - scratch, mean [95% t-interval] | transfer ahead |"
    )
    print("|---" * 5 + "|")
    for epoch, cellv in val.items():
        gap = cellv["transfer-scratch"]
        print(
            f"| {epoch} | "
            + " / ".join(f"{row['transfer']['val_AP50'][epoch]:.3f}" for row in per_seed)
            + " | "
            + " / ".join(f"{row['scratch']['val_AP50'][epoch]:.3f}" for row in per_seed)
            + f" | {gap['mean']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}] "
            f"| {gap['wins']} of {gap['seeds']} |"
        )
    print("| test, best checkpoints | transfer | scratch | transfer - scratch |")
    print("|---" * 4 + "|")
    for metric, gap in test["transfer-scratch"].items():
        print(
            f"| {metric} | {cell(test['arms']['transfer'][metric])} "
            f"| {cell(test['arms']['scratch'][metric])} "
            f"| {gap['difference']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}] |"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
