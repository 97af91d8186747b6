"""Does the ImageNet stand-in beat random weights over seeds, not in one run?

One demo run holds one pretraining of the stand-in and one training of each arm, and the same
params on another CPU model pretrain a different stand-in. This bench repeats the demo's
classifier comparisons over seeds: for each seed s, each architecture is pretrained on the
stand-in task with the demo's `classifier.init` budget from seed s, and compared with random
weights drawn from s:

- the linear probe of `probe_init` (val crops) on the stand-in's features against random ones;
- the frozen arm (the demo's frozen regime, trained from s) against the control (the same
  regime on the random weights), on the val and the test crops;
- the fine-tuned arm against scratch (both trained from s, scratch from the random weights), on
  the val and the test crops.

Each difference is the mean over seeds, with a 95% interval whose draws resample the frames and
each arm's seeds, as `classify.compare` does for `classifier.seeds` in the pipeline: it holds the
pretraining's and the training's noise as well as the crops'. Nothing is chosen here, so the
test crops may be scored.

    dvc repro split            # the demo's crops and split
    python bench/stand_in_seeds.py --seeds 0 1 2 3 4

`--params` and `--split` run it on other params and another split of the same crops (one made
by `python stages/split.py --params P --crops data/crops --out S`). It prints each seed's mCAs
and the differences over seeds, and writes bench/results/stand_in_seeds.json (or `--out`).
"""

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from stand_in_tradeoff import arm_predictions
from timing import write_results

from kitti_pipeline.classify.compare import arm_sampler
from kitti_pipeline.classify.metrics import confusion_matrix, scores_from_confusion
from kitti_pipeline.classify.probe import PROBE, probe_val_predictions
from kitti_pipeline.classify.train import load_crops
from kitti_pipeline.core.bootstrap import difference_cell
from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.files import read_csv
from kitti_pipeline.core.params import load_params
from kitti_pipeline.pretrain.imagenet import init_classifier_weights

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("val", "test")
# Each comparison: (stand-in's arm, random weights' arm, the splits it is scored on).
COMPARISONS = {
    "probe-random": ("probe", "probe_random", ("val",)),
    "frozen-frozen_random": ("frozen", "frozen_random", SPLITS),
    "finetune-scratch": ("finetune", "scratch", SPLITS),
}


def seed_predictions(arch, seed, init, train, sets, rows, classes, device) -> tuple[dict, dict]:
    """Every arm's predictions for one seed, {split: {arm: class ids}}, and the stand-in's
    pretraining figures: the starting weights of `init` (`classifier.init`) with its seed set to
    `seed`, as `init_weights` makes them, and random weights drawn from `seed`."""
    began = time.perf_counter()
    backbone, info = init_classifier_weights(
        arch, replace(init, seed=seed), len(classes), train["device"], train["amp"]
    )
    seconds = time.perf_counter() - began
    _, probe = probe_val_predictions(
        arch,
        {"probe": backbone, "probe_random": None},
        ROOT / "data/crops",
        rows,
        classes,
        seed,
        device,
    )
    predicted = {"val": probe, "test": {}}
    for arm, regime, weights in (
        ("frozen", "frozen", backbone),
        ("frozen_random", "frozen", None),
        ("finetune", "finetune", backbone),
        ("scratch", "scratch", None),
    ):
        out = arm_predictions(arch, regime, weights, sets, train, classes, device, seed=seed)
        for split in SPLITS:
            predicted[split][arm] = out[split]
    pretraining = {
        "seed": seed,
        "pretrain_seconds": round(seconds, 1),
        "held_out_accuracy": info.get("held_out_accuracy"),
    }
    return predicted, pretraining


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="*", default=["resnet18", "mobilenet_v2"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--split", default=str(ROOT / "data/split.csv"), help="of data/crops")
    parser.add_argument("--out", default=str(ROOT / "bench/results/stand_in_seeds.json"))
    args = parser.parse_args()

    raw = yaml.safe_load(Path(args.params).read_text())
    init, train = load_params(args.params).classifier.init, raw["classifier"]["train"]
    classes = tuple(raw["data"]["classes"])
    resamples = raw["classifier"]["bootstrap"]
    device = resolve_device(train["device"])
    rows = read_csv(args.split)
    sets = {
        name: load_crops(ROOT / "data/crops", [r for r in rows if r["split"] == name], classes)
        for name in ("train", *SPLITS)
    }
    frames = {s: [r["frame"] for r in rows if r["split"] == s] for s in SPLITS}
    seeds = tuple(args.seeds)
    results = {}
    for arch in args.archs:
        predictions = {s: {} for s in SPLITS}  # split -> (arch, arm, seed) -> (true, predicted)
        pretraining, mca = [], {s: {} for s in SPLITS}
        for seed in seeds:
            predicted, figures = seed_predictions(
                arch, seed, init, train, sets, rows, classes, device
            )
            pretraining.append(figures)
            for split, arms in predicted.items():
                labels = sets[split][1].numpy()
                for arm, p in arms.items():
                    predictions[split][(arch, arm, seed)] = (labels, p)
                    cm = confusion_matrix(labels, p, len(classes))
                    mca[split].setdefault(arm, []).append(scores_from_confusion(cm)["mCA"])
            print(
                f"{arch} seed {seed}: "
                + "; ".join(
                    f"{split} " + ", ".join(f"{arm} {v[-1]:.3f}" for arm, v in mca[split].items())
                    for split in SPLITS
                )
            )
        differences = {}
        for split in SPLITS:
            arm_values = arm_sampler(predictions[split], frames[split], seeds, classes, resamples)
            for name, (a, b, on) in COMPARISONS.items():
                if split in on:
                    a_draws, a_value = arm_values((arch, a), "mCA")
                    b_draws, b_value = arm_values((arch, b), "mCA")
                    differences.setdefault(name, {})[split] = {
                        **difference_cell(a_value - b_value, a_draws - b_draws),
                        "ahead_in_seeds": sum(
                            x > y for x, y in zip(mca[split][a], mca[split][b], strict=True)
                        ),
                    }
        results[arch] = {"pretraining": pretraining, "mCA": mca, "differences": differences}
    write_results(
        args.out,
        torch.device(device),
        probe=PROBE,
        init_source=init.source,
        pretrain=f"{init.pretrain_images} images x {init.pretrain_epochs} epochs",
        seeds=list(seeds),
        resamples=resamples,
        split=str(args.split),
        crops={name: len(labels) for name, (_, labels) in sets.items()},
        train_epochs=train["epochs"],
        archs=results,
    )
    print(
        "| arch | comparison | split | stand-in's arm, per seed | random weights' arm, per seed "
        "| difference of the means [95% interval] | stand-in ahead |"
    )
    print("|---" * 7 + "|")
    for arch, result in results.items():
        for name, (a, b, on) in COMPARISONS.items():
            for split in on:
                cell = result["differences"][name][split]
                each = [" / ".join(f"{v:.3f}" for v in result["mCA"][split][x]) for x in (a, b)]
                print(
                    f"| {arch} | {name} | {split} | {each[0]} | {each[1]} "
                    f"| {cell['difference']:+.3f} [{cell['low']:+.3f}, {cell['high']:+.3f}] "
                    f"| {cell['ahead_in_seeds']} of {len(seeds)} |"
                )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
