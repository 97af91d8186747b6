"""YOLOv3 loss speed: the batched loss against the loop over images and ground truths.

Both compute the same terms (tests/test_yolo_loss.py holds them equal): the baseline is the loop
this project trained with before (tests/reference_yolo.py), which runs a few tensor operations
and a host synchronisation per ground truth; `kitti_pipeline.detect.yolo.yolo_loss` builds every
ground truth's targets at once. Measured in one process on the same random batches:

- loss forward + backward per step at `cfg/yolov3.cfg`'s three scales (416: 13, 26 and 52 cells),
  batch 16, one class, with 1, 8 and 64 ground truths per frame: median of `--repeats`;
- operator calls (torch.profiler, `aten::` ops) of one whole training step (`train_one_epoch`
  on one batch of the small cfg at 416): they must not grow with the ground truths.

    python bench/yolo_loss_speed.py [--device cuda] [--repeats 10]

Prints the figures and ratios, and writes bench/results/yolo_loss_<device>.json.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from timing import device_name

from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.version import code_version
from kitti_pipeline.detect import train as detect_train
from kitti_pipeline.detect.darknet import build_darknet
from kitti_pipeline.detect.data import DetectionSet
from kitti_pipeline.detect.train import train_one_epoch
from kitti_pipeline.detect.yolo import scales_of, yolo_loss

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.reference_yolo import yolo_loss_loop  # noqa: E402

SIZE, BATCH = 416, 16


def random_targets(count: int, per_frame: int, generator: torch.Generator) -> list[torch.Tensor]:
    """`per_frame` car boxes in each of `count` frames, 8 to 200 px, inside the input."""
    out = []
    for _ in range(count):
        xy = torch.rand(per_frame, 2, generator=generator) * (SIZE - 210)
        wh = torch.rand(per_frame, 2, generator=generator) * 192 + 8
        out.append(torch.cat([torch.zeros(per_frame, 1), xy, xy + wh], 1))
    return out


def loss_seconds(loss, raws, scales, targets, repeats: int, device: torch.device) -> float:
    """Median seconds of one loss forward and backward."""
    times = []
    for _ in range(repeats + 1):  # the first warms up
        if device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        total = loss(raws, scales, targets, 1)["total"]
        torch.autograd.grad(total, raws)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:])


def step_operator_calls(loss, per_frame: int, device: torch.device) -> int:
    """`aten::` operator calls of one training step of the small cfg on one batch."""
    torch.manual_seed(0)
    model = build_darknet(ROOT / "cfg/yolov3-tiny-small.cfg", 1).to(device)
    images = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), dtype=torch.uint8, device=device)
    targets = random_targets(BATCH, per_frame, torch.Generator().manual_seed(1))
    data = DetectionSet(
        images,
        [t.to(device) for t in targets],
        [f"{i}" for i in range(BATCH)],
        [(1.0, 1.0, 0.0, 0.0)] * BATCH,
        [(SIZE, SIZE)] * BATCH,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    original = detect_train.yolo_loss
    detect_train.yolo_loss = loss
    try:
        args = (model, data, optimizer, scales_of(model), 1, BATCH, torch.Generator(), 0, 1e-4, 1)
        train_one_epoch(*args)  # warm-up
        with torch.profiler.profile() as prof:
            train_one_epoch(*args)
    finally:
        detect_train.yolo_loss = original
    return sum(1 for e in prof.events() if e.name.startswith("aten::"))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--per-frame", type=int, nargs="+", default=[1, 8, 64])
    args = parser.parse_args()
    device = resolve_device(args.device)
    scales = scales_of(build_darknet(ROOT / "cfg/yolov3.cfg", 1))
    generator = torch.Generator().manual_seed(0)
    rows = []
    for per_frame in args.per_frame:
        raws = [
            torch.randn(BATCH, 3 * 6, SIZE // s.stride, SIZE // s.stride, generator=generator)
            .to(device)
            .requires_grad_()
            for s in scales
        ]
        targets = [t.to(device) for t in random_targets(BATCH, per_frame, generator)]
        row = {"ground_truths_per_frame": per_frame}
        for name, loss in (("loop", yolo_loss_loop), ("batched", yolo_loss)):
            row[f"{name}_ms"] = 1000 * loss_seconds(
                loss, raws, scales, targets, args.repeats, device
            )
            row[f"{name}_step_ops"] = step_operator_calls(loss, per_frame, device)
        row["speed_up"] = row["loop_ms"] / row["batched_ms"]
        rows.append(row)
        print(
            f"{per_frame:3d} per frame: loop {row['loop_ms']:8.1f} ms, batched "
            f"{row['batched_ms']:6.1f} ms ({row['speed_up']:.1f}x); operator calls per training "
            f"step: loop {row['loop_step_ops']}, batched {row['batched_step_ops']}"
        )
    result = {
        "device": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "code_version": code_version(),
        "batch": BATCH,
        "size": SIZE,
        "repeats": args.repeats,
        "rows": rows,
    }
    out = ROOT / "bench/results" / f"yolo_loss_{device.type}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
