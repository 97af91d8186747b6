"""What does a longer stand-in pretraining buy the transfer arms? Pretraining time against the
linear probe, the frozen arm and the fine-tuned arm, for each architecture.

The synthetic ImageNet stand-in (`classifier.init.source: synthetic`) pretrains on generated
images of ten non-target classes. Each setting of images x epochs below pretrains from the same
seed (`--seed`, default `classifier.init.seed`), and the starting weights are judged on the
demo's crops, by val mCA (never the test crops), two ways, each against random weights measured
in the same run:

- the linear probe of `probe_init` (logistic regression on frozen backbone features, converged);
- the frozen arm itself: the demo's frozen regime (`classifier.train`: Adam, lr, batch, epochs,
  flips, cached features) trained from those weights, seed 0; and the same with as many steps
  as the study's (1500 crops x 20 epochs / batch 8 = 3750; the demo's 600 x 10 / 8 give 750);
- the fine-tuned arm: the demo's finetune regime from those weights, seed 0, against the demo's
  scratch arm.

    dvc repro split            # the demo's crops and split
    python bench/stand_in_tradeoff.py

prints per architecture and setting the pretraining seconds, the stand-in task's held-out
accuracy, the probe's, the frozen arm's and the fine-tuned arm's val mCA (and their gaps to
random weights, or to scratch), writes bench/results/stand_in_tradeoff.json.
"""

import argparse
import time
from pathlib import Path

import torch
import yaml
from timing import write_results

from kitti_pipeline.classify.metrics import confusion_matrix, scores_from_confusion
from kitti_pipeline.classify.models import HEAD_KEYS, build_classifier, load_backbone, to_device
from kitti_pipeline.classify.probe import PROBE, probe_scores
from kitti_pipeline.classify.train import FitConfig, fit, load_crops, predict
from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.files import read_csv
from kitti_pipeline.pretrain.imagenet import pretrain_classifier

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ((3000, 4), (3000, 8), (6000, 8))  # (images, epochs); the demo's is the first


STUDY_STEPS = 1500 * 20 // 8


def arm_predictions(arch, regime, backbone, sets, train, classes, device, steps=None, seed=0):
    """The demo's `regime` arm from `backbone` (None: random weights drawn from `seed`), trained
    from `seed` on `sets["train"]`: its predicted class ids for every other set of `sets`, by
    name; with `steps`, trained for the epochs that make about that many steps."""
    torch.manual_seed(seed)
    model = build_classifier(arch, len(classes))
    if backbone is not None:
        load_backbone(model, arch, backbone, "stand-in")
    model = to_device(model, arch, device)
    cfg = FitConfig(
        train["optimizer"],
        train["lr"],
        train["batch_size"],
        train["epochs"]
        if steps is None
        else round(steps / (len(sets["train"][1]) / train["batch_size"])),
        tuple(train["augment"]),
        train["cache_frozen_features"],
        train["amp"],
    )
    on = {name: tuple(t.to(device) for t in pair) for name, pair in sets.items()}
    fit(model, regime, on["train"], on["val"], cfg, seed, description=f"{regime} {arch}")
    return {
        name: predict(model, on[name][0]).argmax(1).cpu().numpy()
        for name in sets
        if name != "train"
    }


def arm_val_mca(arch, regime, backbone, sets, train, classes, device, steps=None) -> float:
    """The val mCA of `arm_predictions` from seed 0."""
    predicted = arm_predictions(arch, regime, backbone, sets, train, classes, device, steps)
    cm = confusion_matrix(sets["val"][1].numpy(), predicted["val"], len(classes))
    return scores_from_confusion(cm)["mCA"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="*", default=["resnet18", "mobilenet_v2"])
    parser.add_argument(
        "--settings", nargs="*", default=[f"{i}x{e}" for i, e in SETTINGS], help="e.g. 3000x4"
    )
    parser.add_argument("--seed", type=int, help="pretraining seed (default classifier.init.seed)")
    parser.add_argument("--out", default=str(ROOT / "bench/results/stand_in_tradeoff.json"))
    args = parser.parse_args()

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    init, classes = raw["classifier"]["init"], tuple(raw["data"]["classes"])
    device = resolve_device(raw["classifier"]["train"]["device"])
    crops, split = ROOT / "data/crops", ROOT / "data/split.csv"
    rows = read_csv(split)
    sets = {
        name: load_crops(crops, [r for r in rows if r["split"] == name], classes)
        for name in ("train", "val")
    }
    train = raw["classifier"]["train"]
    seed = init["seed"] if args.seed is None else args.seed
    results = {}
    for arch in args.archs:
        random = probe_scores(arch, {"random": None}, crops, split, classes, init["seed"], device)
        random_frozen = arm_val_mca(arch, "frozen", None, sets, train, classes, device)
        random_longer = arm_val_mca(arch, "frozen", None, sets, train, classes, device, STUDY_STEPS)
        scratch = arm_val_mca(arch, "scratch", None, sets, train, classes, device)
        settings = []
        for images, epochs in (map(int, text.split("x")) for text in args.settings):
            began = time.perf_counter()
            state, info = pretrain_classifier(
                arch,
                images,
                init["pretrain_image_size"],
                epochs,
                init["pretrain_batch_size"],
                init["pretrain_lr"],
                seed,
                device,
            )
            seconds = time.perf_counter() - began
            backbone = {k: v for k, v in state.items() if k not in HEAD_KEYS[arch]}
            probe = probe_scores(
                arch, {"stand-in": backbone}, crops, split, classes, init["seed"], device
            )["stand-in"]
            frozen = arm_val_mca(arch, "frozen", backbone, sets, train, classes, device)
            longer = arm_val_mca(
                arch, "frozen", backbone, sets, train, classes, device, STUDY_STEPS
            )
            finetune = arm_val_mca(arch, "finetune", backbone, sets, train, classes, device)
            settings.append(
                {
                    "images": images,
                    "epochs": epochs,
                    "pretrain_seconds": round(seconds, 1),
                    "held_out_accuracy": info["held_out_accuracy"],
                    "probe_val_mCA": probe,
                    "probe_minus_random": probe - random["random"],
                    "frozen_val_mCA": frozen,
                    "frozen_minus_random": frozen - random_frozen,
                    "frozen_study_steps_val_mCA": longer,
                    "frozen_study_steps_minus_random": longer - random_longer,
                    "finetune_val_mCA": finetune,
                    "finetune_minus_scratch": finetune - scratch,
                }
            )
            print(
                f"{arch} {images} images x {epochs} epochs: {seconds:.0f} s, held-out "
                f"{info['held_out_accuracy']:.3f}, probe val mCA {probe:.3f} (random weights "
                f"{random['random']:.3f}), frozen arm val mCA {frozen:.3f} (random weights "
                f"{random_frozen:.3f}); at the study's steps {longer:.3f} ({random_longer:.3f}); "
                f"fine-tuned {finetune:.3f} (scratch {scratch:.3f})"
            )
        results[arch] = {
            "random_probe_val_mCA": random["random"],
            "random_frozen_val_mCA": random_frozen,
            "random_frozen_study_steps_val_mCA": random_longer,
            "scratch_val_mCA": scratch,
            "settings": settings,
        }
    write_results(
        args.out,
        torch.device(device),
        probe=PROBE,
        image_size=init["pretrain_image_size"],
        pretrain_seed=seed,
        study_steps=STUDY_STEPS,
        archs=results,
    )
    print(
        "| arch | images x epochs | pretrain s | held-out acc | probe val mCA (- random) "
        "| frozen arm val mCA (- random) | frozen, study's steps (- random) "
        "| fine-tuned val mCA (- scratch) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for arch, result in results.items():
        for row in result["settings"]:
            print(
                f"| {arch} | {row['images']} x {row['epochs']} | {row['pretrain_seconds']:.0f} "
                f"| {row['held_out_accuracy']:.3f} "
                f"| {row['probe_val_mCA']:.3f} ({row['probe_minus_random']:+.3f}) "
                f"| {row['frozen_val_mCA']:.3f} ({row['frozen_minus_random']:+.3f}) "
                f"| {row['frozen_study_steps_val_mCA']:.3f} "
                f"({row['frozen_study_steps_minus_random']:+.3f}) "
                f"| {row['finetune_val_mCA']:.3f} ({row['finetune_minus_scratch']:+.3f}) |"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
