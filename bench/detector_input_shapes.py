"""Which input shape and anchors should the demo's detector train at? Six variants, measured.

Square 416, a rectangle of about the same pixel count (736x224) and a larger one (832x256), each
with the cfg's anchors and with dataset anchors (`detector.anchors`). Every variant trains both
runs (transfer and scratch, seed 0) through the stage scripts on the demo's frames and split,
from the same init weights (the demo's `models/detector/init.weights`, pretrained on square
scenes: convolution weights do not depend on the input size, so every variant starts alike). The
training budget is the same in pixels: 832x256 holds 1.23x the pixels of 416x416, so it trains
16 epochs where the others train 20.

    dvc repro init_detector   # the demo's frames, split and init weights
    python bench/detector_input_shapes.py

prints and writes (bench/results/detector_input_shapes.json) per variant: the training seconds,
the best val AP@0.5 of each run, and test AP@0.5, AP@[.5:.95] and KITTI moderate AP40 of the
best checkpoints, each with its frame-bootstrap 95% interval, and transfer - scratch in AP@0.5
with its paired interval (`compare_detectors`).
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from timing import write_results

from kitti_pipeline.core.files import read_csv

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "square 416, cfg anchors": (416, "cfg", 20),
    "square 416, dataset anchors": (416, "dataset", 20),
    "736x224, cfg anchors": ([736, 224], "cfg", 20),
    "736x224, dataset anchors": ([736, 224], "dataset", 20),
    "832x256, cfg anchors": ([832, 256], "cfg", 16),
    "832x256, dataset anchors": ([832, 256], "dataset", 16),
}
RUNS = ("transfer", "scratch")


def stage(script: str, params: Path, *args) -> None:
    command = [sys.executable, str(ROOT / "stages" / f"{script}.py"), "--params", str(params)]
    subprocess.run([*command, *map(str, args)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def run_variant(work: Path, raw: dict, frames: str) -> dict:
    """Both runs of one variant, trained and scored in `work`: its row of the results."""
    work.mkdir(parents=True, exist_ok=True)
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    split = ROOT / "data/frame_split.csv"
    stage(
        "detector_anchors",
        params,
        *("--frames", frames, "--split", split),
        *("--out", work / "detector.cfg", "--metrics", work / "anchors.json"),
    )
    seconds, val = {}, {}
    for run in RUNS:
        init = ("--init", ROOT / "models/detector/init.weights")
        init += ("--init-info", ROOT / "metrics/detector/init.json")
        began = time.perf_counter()
        stage(
            "train_detector",
            params,
            *("--run-name", run, "--seed", 0, "--cfg", work / "detector.cfg"),
            *("--frames", frames, "--split", split, *(init if run == "transfer" else ())),
            *("--checkpoints", work / f"checkpoints/{run}", "--model", work / f"models/{run}-s0"),
            *("--provenance", work / f"{run}.json", "--history", work / f"history/{run}.csv"),
        )
        seconds[run] = round(time.perf_counter() - began, 1)
        val[run] = max(float(row["AP50"]) for row in read_csv(work / f"history/{run}.csv"))
        stage(
            "evaluate_detector",
            params,
            *("--frames", frames, "--split", split, "--model", work / f"models/{run}-s0"),
            *("--metrics", work / f"metrics/{run}.json", "--pr", work / f"pr/{run}.csv"),
            *("--matches", work / f"matches/{run}-s0.json"),
        )
    stage("compare_detectors", params, "--matches", work / "matches", "--out", work / "cmp.json")
    comparison = json.loads((work / "cmp.json").read_text())
    anchors = json.loads((work / "anchors.json").read_text())
    used = anchors["cfg_anchors" if raw["detector"]["anchors"] == "cfg" else "dataset_anchors"]
    return {
        "img_size": raw["detector"]["img_size"],
        "anchors": raw["detector"]["anchors"],
        "epochs": raw["detector"]["train"]["epochs"],
        "anchor_fit": {k: used[k] for k in ("mean_best_iou", "best_possible_recall")},
        "train_seconds": seconds,
        "val_best_AP50": val,
        "test": {run: comparison["arms"][run]["best"] for run in RUNS},
        "transfer-scratch": comparison["transfer-scratch"],
    }


def cell(c: dict) -> str:
    return f"{c['value']:.3f} [{c['low']:.3f}, {c['high']:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help="names to run")
    parser.add_argument("--work", default="/tmp/detector_input_shapes", help="scratch folder")
    parser.add_argument("--out", default=str(ROOT / "bench/results/detector_input_shapes.json"))
    args = parser.parse_args()

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    frames = str(ROOT / raw["data"]["frames"])
    results = {}
    for name in args.variants:
        size, anchors, epochs = VARIANTS[name]
        raw["detector"].update(img_size=size, anchors=anchors, seeds=[0])
        raw["detector"]["train"]["epochs"] = epochs
        work = Path(args.work) / name.replace(" ", "_").replace(",", "")
        shutil.rmtree(work, ignore_errors=True)
        results[name] = run_variant(work, raw, frames)
        row = results[name]
        print(
            f"{name}: {row['train_seconds']} s; val AP50 {row['val_best_AP50']}; test AP50 "
            + ", ".join(f"{run} {cell(row['test'][run]['AP50'])}" for run in RUNS)
        )
    write_results(
        args.out,
        torch.device("cpu"),
        frames=raw["data"]["frames"],
        cfg=raw["detector"]["cfg"],
        variants=results,
    )
    print(
        "| variant | anchors fit (mean IoU / BPR) | train s (transfer + scratch) "
        "| val AP@0.5 transfer / scratch | test AP@0.5 transfer | test AP@0.5 scratch "
        "| AP@[.5:.95] transfer | KITTI moderate transfer | transfer - scratch AP@0.5 |"
    )
    print("|---" * 9 + "|")
    for name, row in results.items():
        fit, test, gap = row["anchor_fit"], row["test"], row["transfer-scratch"]["AP50"]
        print(
            f"| {name} | {fit['mean_best_iou']:.3f} / {fit['best_possible_recall']:.3f} "
            f"| {sum(row['train_seconds'].values()):.0f} "
            f"| {row['val_best_AP50']['transfer']:.3f} / {row['val_best_AP50']['scratch']:.3f} "
            f"| {cell(test['transfer']['AP50'])} | {cell(test['scratch']['AP50'])} "
            f"| {cell(test['transfer']['AP50_95'])} "
            f"| {cell(test['transfer']['kitti_AP40_moderate'])} "
            f"| {gap['difference']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}] |"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
