"""Where one detector epoch's time goes at the study's shapes: `cfg/yolov3.cfg`, one class, 416.

Runs the training code's own pieces in order on generated frames and times each, after one
untimed warm-up pass: the forward pass, the loss, the backward pass and the optimizer step of
every batch, then the val pass
(`detect.train.validate`) and the resumable state's save (`core.resumable.Resumable`, weights,
Adam state and the best epoch's copy, as the study saves it at each evaluation).

    python bench/detector_epoch_breakdown.py [--frames 16] [--val-frames 8] [--batch 8]

Runs the epoch twice: in float32 (the baseline) and with the training code's autocast (`amp`:
bfloat16 on a GPU, or on a CPU with native bfloat16; float32 elsewhere). Prints each part's
seconds and share for both, and writes bench/results/detector_epoch_<device>.json.
"""

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch
from timing import device_name

from kitti_pipeline.core.device import autocast, compute_type, resolve_device
from kitti_pipeline.core.params import load_params
from kitti_pipeline.core.resumable import Resumable
from kitti_pipeline.core.version import code_version
from kitti_pipeline.detect.augment import flip_batch
from kitti_pipeline.detect.darknet import build_darknet, init_prediction_biases
from kitti_pipeline.detect.optim import make_detector_optimizer
from kitti_pipeline.detect.predict import CPU_BF16, as_input
from kitti_pipeline.detect.train import cpu_copy, validate
from kitti_pipeline.detect.yolo import scales_of, yolo_loss
from kitti_pipeline.pretrain.coco import make_object_scenes

ROOT = Path(__file__).resolve().parents[1]


def synchronized(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def breakdown(args, device: torch.device, amp: bool) -> dict:
    """One epoch's parts, in seconds, with the training code's autocast on or off."""
    cfg = dataclasses.replace(load_params(ROOT / "params.yaml").detector.train, amp=amp)
    data = make_object_scenes(args.frames + args.val_frames, 416, seed=0)
    for target in data.targets:
        target[:, 0] = 0  # one class, as the study's cars
    cut = args.frames
    train = data.select(slice(0, cut)).to(device)
    val = data.select(slice(cut, cut + args.val_frames)).to(device)
    torch.manual_seed(0)
    model = build_darknet(ROOT / "cfg/yolov3.cfg", 1)
    init_prediction_biases(model)
    model.to(device).train()
    optimizer = make_detector_optimizer(model, cfg)
    scales = scales_of(model)
    parts = dict.fromkeys(("forward", "loss", "backward", "optimizer"), 0.0)
    flips = torch.rand(cut, generator=torch.Generator().manual_seed(0)) < 0.5
    # One untimed pass first: the first call of each kernel pays for its set-up.
    with autocast(device, cfg.amp, cpu_bf16=CPU_BF16):
        warm = model(as_input(train.images[: args.batch]))
    yolo_loss([r.float() for r in warm], scales, train.targets[: args.batch], 1)["total"].backward()
    optimizer.zero_grad(set_to_none=True)
    for batch in torch.arange(cut).split(args.batch):
        began = synchronized(device)
        images, targets = flip_batch(
            train.images[batch], [train.targets[i] for i in batch], flips[batch]
        )
        with autocast(device, cfg.amp, cpu_bf16=CPU_BF16):
            raws = model(as_input(images))
        after_forward = synchronized(device)
        terms = yolo_loss([r.float() for r in raws], scales, targets, 1)
        after_loss = synchronized(device)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        after_backward = synchronized(device)
        optimizer.step()
        done = synchronized(device)
        parts["forward"] += after_forward - began
        parts["loss"] += after_loss - after_forward
        parts["backward"] += after_backward - after_loss
        parts["optimizer"] += done - after_backward
    began = synchronized(device)
    validate(model, val, 0.45)
    parts["validation"] = synchronized(device) - began
    with tempfile.TemporaryDirectory() as tmp:
        state = {
            "epoch": 1,
            "step": 0,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "history": [],
            "best": {"epoch": 1, "model": cpu_copy(model.state_dict())},
        }
        began = time.perf_counter()
        Resumable(Path(tmp) / "state.pt", {"run": "bench"}, "bench", Path(tmp)).save(state)
        parts["checkpoint"] = time.perf_counter() - began
        state_bytes = (Path(tmp) / "state.pt").stat().st_size
    total = sum(parts.values())
    train_seconds = parts["forward"] + parts["loss"] + parts["backward"] + parts["optimizer"]
    return {
        "compute": compute_type(device, amp, cpu_bf16=CPU_BF16),
        "seconds": {k: round(v, 3) for k, v in parts.items()},
        "share": {k: round(v / total, 3) for k, v in parts.items()},
        "state_bytes": state_bytes,
        "seconds_per_train_image": round(train_seconds / cut, 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--val-frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    device = resolve_device(args.device)
    runs = [breakdown(args, device, amp) for amp in (False, True)]
    result = {
        "device": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "code_version": code_version(),
        "cfg": "cfg/yolov3.cfg",
        "img_size": 416,
        "train_frames": args.frames,
        "val_frames": args.val_frames,
        "batch": args.batch,
        "float32": runs[0],
        "amp": runs[1],
        "epoch_speedup": sum(runs[0]["seconds"].values()) / sum(runs[1]["seconds"].values()),
    }
    for name in runs[0]["seconds"]:
        line = "  ".join(
            f"{r['compute']} {r['seconds'][name]:7.2f} s {r['share'][name]:6.1%}" for r in runs
        )
        print(f"{name:>10}: {line}")
    print(
        f"per training frame: {runs[0]['seconds_per_train_image']} s float32, "
        f"{runs[1]['seconds_per_train_image']} s {runs[1]['compute']}; epoch "
        f"{result['epoch_speedup']:.2f}x; state {runs[1]['state_bytes']:,} B"
    )
    out = ROOT / "bench/results" / f"detector_epoch_{device.type}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
