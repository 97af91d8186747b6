"""Training speed of the classifier runs against a torchvision-tutorial baseline.

The baseline is the loop of torchvision's transfer-learning tutorial: an ImageFolder of PNGs
decoded by PIL every epoch, a DataLoader, fp32, and in the frozen case a full forward pass per
batch with gradients only for the head. Ours is `kitti_pipeline.classify.train.fit`: crops
decoded once into a uint8 tensor on the device, flips there, bf16 autocast and channels_last on
CUDA, and in the frozen regime backbone features computed once. Both train the same model on the
same crops for the same epochs, in this process; wall time includes loading.

    python bench/classifier_speed.py                       # CPU-sized defaults
    python bench/classifier_speed.py --images 1500 --size 128 --epochs 20   # the study's sizes

Prints images/s and the ratio ours/baseline for each (architecture, regime) and writes them to
bench/results/classifier_speed_<device>.json.
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timing import device_name, timed
from torch import nn
from torchvision import datasets, transforms

from kitti_pipeline.classify.models import build_classifier, trainable_parameters
from kitti_pipeline.classify.train import IMAGENET_MEAN, IMAGENET_STD, FitConfig, fit, load_crops
from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.version import code_version
from kitti_pipeline.pretrain.imagenet import render_object_image

CLASSES = ("Car", "Person", "Cyclist")


def write_image_folder(root: Path, count: int, size: int) -> list[dict]:
    """`count` PNG crops in ImageFolder layout (root/<class>/<n>.png); returns manifest rows."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        name = CLASSES[i % len(CLASSES)]
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(render_object_image(rng, size, i % 10)).save(root / name / f"{i:05d}.png")
        rows.append({"crop": f"{name}/{i:05d}.png", "class": name})
    return rows


def baseline(arch, regime, root, device, epochs, batch_size):
    """The tutorial's loop: PIL decoding each epoch, DataLoader, fp32."""
    data = datasets.ImageFolder(
        root,
        transforms.Compose(
            [
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        ),
    )
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=True, num_workers=min(4, os.cpu_count() or 1)
    )
    model = build_classifier(arch, len(CLASSES)).to(device)
    optimizer = torch.optim.Adam(trainable_parameters(model, regime), lr=1e-4)
    criterion = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        for inputs, labels in loader:
            inputs, labels = inputs.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
    return len(data) * epochs


def ours(arch, regime, root, rows, device, epochs, batch_size):
    images, labels = (t.to(device) for t in load_crops(root, rows, CLASSES))
    model = build_classifier(arch, len(CLASSES)).to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    cfg = FitConfig(
        "adam", 1e-4, batch_size, epochs, augment=("flip",), cache_frozen_features=True, amp=True
    )
    val = (images[:batch_size], labels[:batch_size])
    fit(model, regime, (images, labels), val, cfg, seed=0, description=f"{arch} {regime}")
    return len(rows) * epochs


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--archs", nargs="+", default=["resnet18", "mobilenet_v2"])
    parser.add_argument("--regimes", nargs="+", default=["frozen", "finetune", "scratch"])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        rows = write_image_folder(Path(tmp), args.images, args.size)
        for arch in args.archs:
            for regime in args.regimes:
                base = timed(
                    baseline, device, arch, regime, tmp, device, args.epochs, args.batch_size
                )
                fast = timed(
                    ours, device, arch, regime, tmp, rows, device, args.epochs, args.batch_size
                )
                ratio = base["seconds"] / fast["seconds"]
                results.append(
                    {
                        "arch": arch,
                        "regime": regime,
                        "baseline": base,
                        "ours": fast,
                        "speedup": ratio,
                    }
                )
                print(
                    f"{arch:13s} {regime:9s} baseline {base['images_per_s']:8.1f} img/s  "
                    f"ours {fast['images_per_s']:8.1f} img/s  speedup x{ratio:.1f}"
                )

    name = "cuda" if device.type == "cuda" else "cpu"
    report = {
        "device": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "code_version": code_version(),
        "settings": {
            "images": args.images,
            "size": args.size,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
        },
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"classifier_speed_{name}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
