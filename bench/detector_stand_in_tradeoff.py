"""What does a longer COCO stand-in pretraining buy the detector's transfer run?

The synthetic COCO stand-in (`detector.init.source: synthetic`) pretrains the detector on
generated scenes of ten non-target classes. Each budget below (scenes x epochs) pretrains from
the same seed through the `init_detector` stage; the transfer run then trains from those weights
through `train_detector` with the demo's params (seed 0), and is scored against the demo's
scratch run, trained once here (it reads no starting weights), by:

- val AP@0.5 at every evaluated epoch (the curve the demo's choice may look at);
- test AP@0.5 of the best checkpoint, and transfer - scratch with its paired interval
  (`compare_detectors`), reported, never used to choose.

    dvc repro detector_anchors   # the demo's frames, split and data/detector.cfg
    python bench/detector_stand_in_tradeoff.py

prints per budget the pretraining seconds, the stand-in's held-out mAP@0.5, the val curves and
the test figures, and writes bench/results/detector_stand_in_tradeoff.json.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
import yaml
from detector_input_shapes import cell, stage
from timing import write_results

from kitti_pipeline.core.files import read_csv

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = ((240, 10), (480, 10), (480, 20))  # (scenes, epochs); the demo's is the first


def train_and_score(
    work: Path,
    params: Path,
    frames: str,
    run: str,
    init: Path | None,
    seed: int = 0,
    split: Path = ROOT / "data/frame_split.csv",
) -> dict:
    """One run trained from `seed` on the frames of `split` and evaluated in `work`: seconds
    and val AP@0.5 per evaluated epoch; its test matches in `work/matches/<run>-s<seed>.json`."""
    cfg = ROOT / "data/detector.cfg"
    starting = ("--init", init / "init.weights", "--init-info", init / "init.json") if init else ()
    began = time.perf_counter()
    stage(
        "train_detector",
        params,
        *("--run-name", run, "--seed", seed, "--cfg", cfg),
        *("--frames", frames, "--split", split, *starting),
        *("--checkpoints", work / "checkpoints", "--model", work / "model"),
        *("--provenance", work / "provenance.json", "--history", work / "history.csv"),
    )
    seconds = round(time.perf_counter() - began, 1)
    stage(
        "evaluate_detector",
        params,
        *("--frames", frames, "--split", split, "--model", work / "model"),
        *("--metrics", work / "metrics.json", "--pr", work / "pr.csv"),
        *("--matches", work / f"matches/{run}-s{seed}.json"),
    )
    curve = {int(r["epoch"]): float(r["AP50"]) for r in read_csv(work / "history.csv") if r["AP50"]}
    return {"train_seconds": seconds, "val_AP50": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/detector_stand_in_tradeoff", help="scratch folder")
    parser.add_argument(
        "--out", default=str(ROOT / "bench/results/detector_stand_in_tradeoff.json")
    )
    args = parser.parse_args()

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["detector"]["seeds"] = [0]
    frames = str(ROOT / raw["data"]["frames"])
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    scratch = train_and_score(work / "scratch", params, frames, "scratch", None)
    print(f"scratch: val AP50 {scratch['val_AP50']}")

    rows = []
    for scenes, epochs in BUDGETS:
        here = work / f"{scenes}x{epochs}"
        here.mkdir()
        raw["detector"]["init"].update(pretrain_frames=scenes, pretrain_epochs=epochs)
        budget_params = here / "params.yaml"
        budget_params.write_text(yaml.safe_dump(raw))
        began = time.perf_counter()
        stage(
            "init_detector",
            budget_params,
            "--out",
            here / "init.weights",
            "--metrics",
            here / "init.json",
        )
        pretrain_seconds = round(time.perf_counter() - began, 1)
        transfer = train_and_score(here / "transfer", budget_params, frames, "transfer", here)
        matches = here / "matches"
        matches.mkdir()
        for run, folder in (("transfer", here / "transfer"), ("scratch", work / "scratch")):
            shutil.copy(folder / f"matches/{run}-s0.json", matches)
        stage("compare_detectors", budget_params, "--matches", matches, "--out", here / "cmp.json")
        comparison = json.loads((here / "cmp.json").read_text())
        curve = transfer["val_AP50"]
        row = {
            "pretrain_frames": scenes,
            "pretrain_epochs": epochs,
            "pretrain_seconds": pretrain_seconds,
            "held_out_mAP50": json.loads((here / "init.json").read_text())["held_out_mAP50"],
            "transfer_train_seconds": transfer["train_seconds"],
            "val_AP50": curve,
            "beats_scratch_at_every_checkpoint": all(
                curve[e] > scratch["val_AP50"][e] for e in curve
            ),
            "test_AP50": {
                run: comparison["arms"][run]["best"]["AP50"] for run in ("transfer", "scratch")
            },
            "transfer-scratch": comparison["transfer-scratch"]["AP50"],
        }
        rows.append(row)
        print(f"{scenes} x {epochs}: {pretrain_seconds} s pretraining; val AP50 {curve}")

    write_results(
        args.out,
        torch.device("cpu"),
        frames=raw["data"]["frames"],
        img_size=raw["detector"]["img_size"],
        epochs=raw["detector"]["train"]["epochs"],
        scratch=scratch,
        budgets=rows,
    )
    epochs = sorted(scratch["val_AP50"])
    print(
        "| scenes x epochs | pretrain s | held-out mAP@0.5 | val AP@0.5 at epochs "
        + ", ".join(map(str, epochs))
        + " | test AP@0.5 transfer | transfer - scratch AP@0.5 |"
    )
    print("|---" * 6 + "|")
    print(
        "| scratch | | | "
        + " / ".join(f"{scratch['val_AP50'][e]:.3f}" for e in epochs)
        + f" | {cell(rows[0]['test_AP50']['scratch'])} | |"
    )
    for row in rows:
        gap = row["transfer-scratch"]
        print(
            f"| {row['pretrain_frames']} x {row['pretrain_epochs']} "
            f"| {row['pretrain_seconds']:.0f} | {row['held_out_mAP50']:.3f} | "
            + " / ".join(f"{row['val_AP50'][e]:.3f}" for e in epochs)
            + f" | {cell(row['test_AP50']['transfer'])} "
            f"| {gap['difference']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}] |"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
