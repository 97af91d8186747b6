"""Transfer from the real COCO yolov3-tiny file over seeds: against scratch, and a fresh head
against the head carried over from COCO's `car` rows.

For each seed s, three runs train from s with the demo's params through `train_detector`, on the
demo's frames, split and data/detector.cfg, and are evaluated as the pipeline evaluates them:
scratch, transfer with a fresh head (the study's method, `detector.init.head_classes: null`), and
transfer with the carried head (`head_classes: [2]`). Every run is evaluated on val at epoch 0
(its starting weights) and every `eval_every` epochs.

    dvc repro detector_anchors pretrained   # the demo's frames, split, cfg and real files
    python bench/detector_transfer.py --seeds 0 1 2

It prints, per evaluated epoch, the val AP@0.5 of each run and seed and the mean paired
difference over seeds with a 95% t-interval (seeds the unit), for transfer - scratch and carried
- fresh; and on test, at the best checkpoints, each difference in AP@0.5, AP@[.5:.95] and KITTI
moderate AP40 from `compare_detectors` (each draw resamples the test frames and each run's
seeds); and writes bench/results/detector_transfer.json (or `--out`).
"""

import argparse
import shutil
from pathlib import Path

import torch
import yaml
from detector_input_shapes import cell, stage
from detector_seeds import over_seeds
from detector_stand_in_tradeoff import train_and_score
from timing import write_results

from kitti_pipeline.detect.compare import compare_detectors

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("AP50", "AP50_95", "kitti_AP40_moderate")
# (name, pipeline run name, head_classes): the carried head trains as a transfer run.
ARMS = (("scratch", "scratch", None), ("fresh", "transfer", None), ("carried", "transfer", [2]))
# Each comparison: (name, the run compared, the run it is compared with).
PAIRS = (("transfer-scratch", "fresh", "scratch"), ("carried-fresh", "carried", "fresh"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--work", default="/tmp/detector_transfer", help="scratch folder")
    parser.add_argument("--out", default=str(ROOT / "bench/results/detector_transfer.json"))
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("--seeds: an interval over seeds needs at least two")

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["detector"]["seeds"] = args.seeds
    frames = str(ROOT / raw["data"]["frames"])
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    per_seed = []
    for seed in args.seeds:
        row = {"seed": seed}
        for arm, run, head in ARMS:
            here = work / f"s{seed}" / arm
            here.mkdir(parents=True)
            raw["detector"]["init"]["head_classes"] = head
            params = here / "params.yaml"
            params.write_text(yaml.safe_dump(raw))
            init = None
            if run == "transfer":
                init = here
                stage(
                    "init_detector",
                    params,
                    *("--pretrained", ROOT / "models/pretrained"),
                    *("--out", here / "init.weights", "--metrics", here / "init.json"),
                )
            row[arm] = train_and_score(here, params, frames, run, init, seed)
            for name, compared, base in PAIRS:  # compare_detectors reads transfer and scratch
                role = {compared: "transfer", base: "scratch"}.get(arm)
                if role:
                    (work / name).mkdir(exist_ok=True)
                    matches = here / f"matches/{run}-s{seed}.json"
                    shutil.copy(matches, work / name / f"{role}-s{seed}.json")
        per_seed.append(row)
        print(f"seed {seed}: val AP50 " + ", ".join(f"{a} {row[a]['val_AP50']}" for a, *_ in ARMS))

    evaluate = raw["detector"]["evaluate"]
    compared = {
        name: compare_detectors(
            work / name, tuple(args.seeds), evaluate["conf_threshold"], evaluate["bootstrap"]
        )
        for name, *_ in PAIRS
    }
    epochs = sorted(per_seed[0]["scratch"]["val_AP50"])
    val = {}
    for epoch in epochs:
        val[epoch] = {
            arm: [row[arm]["val_AP50"][epoch] for row in per_seed] for arm, *_ in ARMS
        } | {
            name: over_seeds(
                [row[a]["val_AP50"][epoch] - row[b]["val_AP50"][epoch] for row in per_seed]
            )
            for name, a, b in PAIRS
        }
    test = {
        name: {
            "arms": {
                run: {m: result["arms"][run]["best"][m] for m in METRICS}
                for run in ("transfer", "scratch")
            },
            "difference": {m: result["transfer-scratch"][m] for m in METRICS},
        }
        for name, result in compared.items()
    }
    write_results(
        args.out,
        torch.device("cpu"),
        frames=raw["data"]["frames"],
        cfg=raw["detector"]["cfg"],
        weights=raw["detector"]["init"]["weights"],
        img_size=raw["detector"]["img_size"],
        epochs=raw["detector"]["train"]["epochs"],
        seeds=args.seeds,
        per_seed=per_seed,
        val=val,
        test=test,
    )
    print("| epoch | " + " | ".join(f"val AP@0.5 {a}, per seed" for a, *_ in ARMS), end="")
    print(" | " + " | ".join(f"{n}, mean [95% t-interval]" for n, *_ in PAIRS) + " |")
    print("|---" * (1 + len(ARMS) + len(PAIRS)) + "|")
    for epoch, cells in val.items():
        line = f"| {epoch} | " + " | ".join(
            " / ".join(f"{v:.3f}" for v in cells[a]) for a, *_ in ARMS
        )
        for name, *_ in PAIRS:
            gap = cells[name]
            line += f" | {gap['mean']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}]"
        print(line + " |")
    print("| test, best checkpoints | compared | with | difference [95%] |")
    print("|---" * 4 + "|")
    for name, result in test.items():
        for metric, gap in result["difference"].items():
            print(
                f"| {name} {metric} | {cell(result['arms']['transfer'][metric])} "
                f"| {cell(result['arms']['scratch'][metric])} "
                f"| {gap['difference']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}] |"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
