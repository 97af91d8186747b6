"""Detector speed: training images/s against a per-step data-loading baseline, and inference
frames/s with BatchNorm folded into the convolutions against the same model unfolded.

Training, baseline: a Dataset that decodes each frame's PNG and letterboxes it at every step, a
DataLoader with workers, random flips, fp32: the usual YOLOv3 loop. Ours:
`kitti_pipeline.detect.train.train_one_epoch` on frames letterboxed once into a uint8 tensor
on the device, flips there, bf16 autocast on CUDA. Both train the same model on the same KITTI-
sized synthetic frames for the same epochs in this process; wall time includes loading.
Inference: forward pass, decoding and NMS on letterboxed frames in eval mode, batch 1 and 16.

    python bench/detector_speed.py                         # CPU: small and tiny cfgs
    python bench/detector_speed.py --device cuda --cfgs cfg/yolov3-tiny-small.cfg \\
        cfg/yolov3-tiny.cfg cfg/yolov3.cfg --frames 128

Prints the figures and ratios, and writes bench/results/detector_speed_<device>.json.
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from timing import device_name, timed

from kitti_pipeline.core.device import autocast, resolve_device
from kitti_pipeline.core.version import code_version
from kitti_pipeline.data.boxes import normalise
from kitti_pipeline.data.labels import format_yolo_line
from kitti_pipeline.data.synthetic import render_frame
from kitti_pipeline.detect.darknet import build_darknet, fuse_batchnorm, init_prediction_biases
from kitti_pipeline.detect.data import letterbox, load_detection_set, load_frame
from kitti_pipeline.detect.train import train_one_epoch
from kitti_pipeline.detect.yolo import detect, scales_of, yolo_loss

MIX = {"Car": 0.80, "Person": 0.15, "Cyclist": 0.05}


def write_frames(root: Path, count: int) -> list[str]:
    """`count` synthetic 1242x375 frames with YOLO labels, as the synthesize stage writes them."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(count):
        image, objects = render_frame(np.random.default_rng([0, i]), 1242, 375, 8.0, MIX)
        image.save(root / "images" / f"{i:06d}.png")
        lines = [
            format_yolo_line(list(MIX).index(o.class_name), *normalise(o.visible_box, 1242, 375))
            for o in objects
        ]
        (root / "labels" / f"{i:06d}.txt").write_text("".join(f"{x}\n" for x in lines))
    return [f"{i:06d}" for i in range(count)]


class LetterboxedFrames(torch.utils.data.Dataset):
    """The baseline's data: decode, class filter, letterbox and flip at every access."""

    def __init__(self, root: Path, stems: list[str], size: int):
        self.root, self.stems, self.size = root, stems, size

    def __len__(self):
        return len(self.stems)

    def __getitem__(self, i):
        stem = self.stems[i]
        image, boxes, classes = load_frame(
            self.root / "images" / f"{stem}.png", self.root / "labels" / f"{stem}.txt", 3, (0,)
        )
        image, boxes, _ = letterbox(image, boxes, self.size)
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
            boxes[:, [0, 2]] = self.size - boxes[:, [2, 0]]
        return image, torch.cat([classes[:, None].float(), boxes], 1)


def baseline_training(cfg, root, stems, size, device, epochs, batch_size):
    torch.manual_seed(0)
    model = build_darknet(cfg, 1)
    init_prediction_biases(model)
    model.to(device).train()
    scales = scales_of(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(
        LetterboxedFrames(root, stems, size),
        batch_size=batch_size,
        shuffle=True,
        num_workers=min(4, os.cpu_count() or 1),
        collate_fn=lambda items: tuple(zip(*items, strict=True)),
    )
    for _ in range(epochs):
        for images, targets in loader:
            images = torch.stack(images).to(device).float() / 255
            loss = yolo_loss(model(images), scales, [t.to(device) for t in targets], 1)["total"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return len(stems) * epochs


def our_training(cfg, root, stems, size, device, epochs, batch_size):
    data = load_detection_set(root, stems, 3, (0,), size).to(device)
    torch.manual_seed(0)
    model = build_darknet(cfg, 1)
    init_prediction_biases(model)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator, step = torch.Generator().manual_seed(0), 0
    for _ in range(epochs):
        _, step = train_one_epoch(
            model,
            data,
            optimizer,
            scales_of(model),
            1,
            batch_size,
            generator,
            step,
            1e-3,
            0,
            amp=device.type == "cuda",
        )
    return len(stems) * epochs


@torch.no_grad()
def inference(model, images: torch.Tensor, batch_size: int, device, amp: bool):
    scales = scales_of(model)
    for start in range(0, len(images), batch_size):
        with autocast(device, amp):
            raws = model(images[start : start + batch_size].float() / 255)
        detect([r.float() for r in raws], scales, 0.25, 0.45)
    return len(images)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--img-size", type=int, default=416)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--cfgs", nargs="+", default=["cfg/yolov3-tiny-small.cfg", "cfg/yolov3-tiny.cfg"]
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    amp = device.type == "cuda"

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stems = write_frames(root, args.frames)
        frames = load_detection_set(root, stems, 3, (0,), args.img_size).images.to(device)
        for cfg in args.cfgs:
            train_args = (cfg, root, stems, args.img_size, device, args.epochs, args.batch_size)
            base = timed(baseline_training, device, *train_args)
            ours = timed(our_training, device, *train_args)
            model = build_darknet(cfg, 1).to(device).eval()
            fused = fuse_batchnorm(model)
            row = {
                "cfg": cfg,
                "train": {
                    "baseline": base,
                    "ours": ours,
                    "speedup": base["seconds"] / ours["seconds"],
                },
                "inference": {},
            }
            for batch in (1, 16):
                inference(fused, frames[:batch], batch, device, amp)  # warm-up
                plain = timed(inference, device, model, frames, batch, device, amp)
                folded = timed(inference, device, fused, frames, batch, device, amp)
                row["inference"][f"batch_{batch}"] = {
                    "unfused_fps": plain["images_per_s"],
                    "fused_fps": folded["images_per_s"],
                    "speedup": plain["seconds"] / folded["seconds"],
                }
            results.append(row)
            b1, b16 = row["inference"]["batch_1"], row["inference"]["batch_16"]
            print(
                f"{Path(cfg).name:22s} train: baseline {base['images_per_s']:6.1f} img/s, ours "
                f"{ours['images_per_s']:6.1f} img/s (x{row['train']['speedup']:.2f}); inference "
                f"batch 1: {b1['unfused_fps']:6.1f} -> {b1['fused_fps']:6.1f} fps "
                f"(x{b1['speedup']:.2f}), batch 16: {b16['unfused_fps']:6.1f} -> "
                f"{b16['fused_fps']:6.1f} fps (x{b16['speedup']:.2f})"
            )

    name = "cuda" if device.type == "cuda" else "cpu"
    report = {
        "device": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "code_version": code_version(),
        "settings": {
            "frames": args.frames,
            "img_size": args.img_size,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "amp": amp,
        },
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"detector_speed_{name}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
