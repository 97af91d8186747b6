"""What does a longer stand-in pretraining buy the frozen features? Pretraining time against the
linear probe, for each architecture.

The synthetic ImageNet stand-in (`classifier.init.source: synthetic`) pretrains on generated
images of ten non-target classes. Each setting of images x epochs below pretrains from the same
seed, and the starting weights are judged by the linear probe of `probe_init` (logistic
regression on frozen backbone features of the demo's training crops, mCA on its val crops; never
the test crops) against the same probe on random weights, measured in the same run.

    dvc repro split            # the demo's crops and split
    python bench/stand_in_tradeoff.py

prints per architecture and setting the pretraining seconds, the stand-in task's held-out
accuracy and the probe's val mCA (and its gap to random weights), and writes
bench/results/stand_in_tradeoff.json.
"""

import argparse
import json
import os
import time
from pathlib import Path

import torch
import yaml
from timing import device_name

from kitti_pipeline.classify.models import HEAD_KEYS
from kitti_pipeline.classify.probe import PROBE, probe_scores
from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.version import code_version
from kitti_pipeline.pretrain.imagenet import pretrain_classifier

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ((3000, 4), (3000, 8), (6000, 8))  # (images, epochs); the demo's is the first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="*", default=["resnet18", "mobilenet_v2"])
    parser.add_argument("--out", default=str(ROOT / "bench/results/stand_in_tradeoff.json"))
    args = parser.parse_args()

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    init, classes = raw["classifier"]["init"], tuple(raw["data"]["classes"])
    device = resolve_device(raw["classifier"]["train"]["device"])
    crops, split = ROOT / "data/crops", ROOT / "data/split.csv"
    results = {}
    for arch in args.archs:
        random = probe_scores(arch, {"random": None}, crops, split, classes, init["seed"], device)
        rows = []
        for images, epochs in SETTINGS:
            began = time.perf_counter()
            state, info = pretrain_classifier(
                arch,
                images,
                init["pretrain_image_size"],
                epochs,
                init["pretrain_batch_size"],
                init["pretrain_lr"],
                init["seed"],
                device,
            )
            seconds = time.perf_counter() - began
            backbone = {k: v for k, v in state.items() if k not in HEAD_KEYS[arch]}
            probe = probe_scores(
                arch, {"stand-in": backbone}, crops, split, classes, init["seed"], device
            )["stand-in"]
            rows.append(
                {
                    "images": images,
                    "epochs": epochs,
                    "pretrain_seconds": round(seconds, 1),
                    "held_out_accuracy": info["held_out_accuracy"],
                    "probe_val_mCA": probe,
                    "minus_random": probe - random["random"],
                }
            )
            print(
                f"{arch} {images} images x {epochs} epochs: {seconds:.0f} s, held-out "
                f"{info['held_out_accuracy']:.3f}, probe val mCA {probe:.3f} "
                f"(random weights {random['random']:.3f})"
            )
        results[arch] = {"random_probe_val_mCA": random["random"], "settings": rows}
    out = {
        "device": device_name(torch.device(device)),
        "cpu_count": os.cpu_count(),
        "code_version": code_version(),
        "probe": PROBE,
        "image_size": init["pretrain_image_size"],
        "archs": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print("| arch | images x epochs | pretrain s | held-out acc | probe val mCA | - random |")
    print("|---|---|---|---|---|---|")
    for arch, result in results.items():
        for row in result["settings"]:
            print(
                f"| {arch} | {row['images']} x {row['epochs']} | {row['pretrain_seconds']:.0f} "
                f"| {row['held_out_accuracy']:.3f} | {row['probe_val_mCA']:.3f} "
                f"| {row['minus_random']:+.3f} |"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
