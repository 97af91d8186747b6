"""Operators one detector training step dispatches: the eager step against the compiled one.

On a GPU a small detector's step is bound by kernel launches, not arithmetic, so the count of
operators a step dispatches is what its speed follows. Measured in one process on the same
batch: `cfg/yolov3-tiny.cfg` at 128x128, batch 16, 8 boxes per frame, one class, float32, one
whole step (network, loss, backward, optimizer):

- eager: `batch_loss` as it is, Adam's for-loop update (the CPU default);
- eager, fused Adam: the update in one kernel;
- compiled: `torch.compile(batch_loss)` with the fused Adam, what `detector.train.compile: auto`
  trains with on CUDA.

torch.profiler counts every `aten::` operator event (nested calls included) and those called
from outside any other operator (top-level), after warm-up steps (compilation). Also the median
seconds of a step and the ratios to the eager step.

    python bench/step_ops.py [--device cuda] [--repeats 10]

Prints the figures and writes bench/results/step_ops_<device>.json.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from timing import device_name, write_results

from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.params import load_params
from kitti_pipeline.detect.darknet import build_darknet
from kitti_pipeline.detect.optim import make_detector_optimizer
from kitti_pipeline.detect.train import batch_loss
from kitti_pipeline.detect.yolo import scales_of

ROOT = Path(__file__).resolve().parents[1]
CFG = ROOT / "cfg/yolov3-tiny.cfg"
SIZE, BATCH, BOXES = 128, 16, 8


def make_batch(device: torch.device):
    """Random frames and 8 boxes of class 0 per frame, in input pixels."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    targets = []
    for _ in range(BATCH):
        corner = torch.rand(BOXES, 2, generator=g) * (SIZE - 40)
        size = 8 + torch.rand(BOXES, 2, generator=g) * 32
        boxes = torch.cat([corner, corner + size], 1)
        targets.append(torch.cat([torch.zeros(BOXES, 1), boxes], 1).to(device))
    return images.to(device), targets


def make_step(device: torch.device, fused: bool, compiled: bool):
    """One training step of a fresh model (seed 0): returns it and the step function."""
    cfg = load_params(ROOT / "params.yaml").detector.train
    torch.manual_seed(0)
    model = build_darknet(CFG, 1).to(device).train()
    optimizer = make_detector_optimizer(model, cfg, fused=fused)
    scales = scales_of(model)
    loss_fn = torch.compile(batch_loss) if compiled else batch_loss

    def step(images, targets) -> float:
        terms = loss_fn(model, images, targets, scales, 1, False, small_box_scale=True)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        return terms["total"]

    return step


def count_ops(step, batch) -> dict:
    """`aten::` operator events of one step: all of them, and the top-level ones."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step(*batch)
    events = [e for e in prof.events() if e.name.startswith("aten::")]

    def nested(event) -> bool:
        parent = event.cpu_parent
        while parent is not None:
            if parent.name.startswith("aten::"):
                return True
            parent = parent.cpu_parent
        return False

    return {"all": len(events), "top_level": sum(not nested(e) for e in events)}


def seconds_per_step(step, batch, device: torch.device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        float(step(*batch))  # waits for the step
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3, help="steps before measuring")
    parser.add_argument("--out", help="default: bench/results/step_ops_<device>.json")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    batch = make_batch(device)
    rows = {}
    variants = {
        "eager": (False, False),
        "eager_fused_adam": (True, False),
        "compiled": (True, True),
    }
    for name, (fused, compiled) in variants.items():
        step = make_step(device, fused, compiled)
        losses = [float(step(*batch)) for _ in range(args.warmup)]
        rows[name] = {
            "ops": count_ops(step, batch),
            "seconds_per_step": seconds_per_step(step, batch, device, args.repeats),
            "losses": losses,
        }
    base = rows["eager"]
    for name, row in rows.items():
        row["ops_ratio"] = row["ops"]["all"] / base["ops"]["all"]
        row["speedup"] = base["seconds_per_step"] / row["seconds_per_step"]
        print(
            f"{name}: {row['ops']['all']} aten ops ({row['ops']['top_level']} top-level), "
            f"{row['ops_ratio']:.2f}x eager's; {row['seconds_per_step'] * 1000:.1f} ms a step, "
            f"{row['speedup']:.2f}x eager's speed; losses {[round(x, 4) for x in row['losses']]}"
        )
    out = args.out or ROOT / f"bench/results/step_ops_{device.type}.json"
    write_results(
        out,
        device,
        cfg=CFG.name,
        input=[SIZE, SIZE],
        batch=BATCH,
        boxes_per_frame=BOXES,
        repeats=args.repeats,
        variants=rows,
    )
    print(f"wrote {out} ({device_name(device)})")


if __name__ == "__main__":
    sys.exit(main())
