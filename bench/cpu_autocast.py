"""Is bfloat16 autocast worth it on this CPU? One training step, four ways, in one run.

Times a training step (forward, loss, backward, Adam) of the demo's and the study's networks on
the CPU: float32 as today (the baseline), float32 with channels_last, bfloat16 autocast, and
bfloat16 autocast with channels_last. The results record whether the CPU has native bf16
instructions (AMX, or AVX-512 BF16: the `amx_*` / `avx512_bf16` flags of `lscpu`); the training
code uses bfloat16 on the CPU only where it does.

    python bench/cpu_autocast.py                   # every case
    python bench/cpu_autocast.py --only yolov3-tiny  # the detector's input sizes only

prints the median step time (the four taking turns step by step) and the ratio to float32 for
each case, and writes
bench/results/cpu_autocast.json.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from timing import device_name

from kitti_pipeline.classify.models import build_classifier
from kitti_pipeline.core.version import code_version
from kitti_pipeline.detect.darknet import build_darknet
from kitti_pipeline.detect.yolo import scales_of, yolo_loss

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "float32": (False, False),
    "float32 + channels_last": (False, True),
    "bfloat16": (True, False),
    "bfloat16 + channels_last": (True, True),
}


def cpu_flags() -> list[str]:
    """The CPU's bf16-related flags from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    lines = [line for line in text.splitlines() if line.startswith("flags")]
    flags = lines[0].split(":", 1)[1].split() if lines else []
    return sorted(f for f in set(flags) if "bf16" in f or f.startswith("amx"))


def classifier_step(arch: str, size: int, batch: int):
    torch.manual_seed(0)
    model = build_classifier(arch, 3)
    x = torch.rand(batch, 3, size, size)
    y = torch.randint(0, 3, (batch,))

    def loss(m, images):
        return F.cross_entropy(m(images).float(), y)

    return model, x, loss


def detector_step(cfg: str, width: int, height: int, batch: int):
    torch.manual_seed(0)
    model = build_darknet(ROOT / cfg, 1)
    x = torch.rand(batch, 3, height, width)
    targets = [torch.tensor([[0, 100.0, 150, 160, 190], [0, 250, 140, 330, 200]])] * batch
    scales = scales_of(model)

    def loss(m, images):
        return yolo_loss([r.float() for r in m(images)], scales, targets, 1)["total"]

    return model, x, loss


def time_modes(build, steps: int, modes: dict) -> dict[str, float]:
    """Median seconds per step of each of `modes`, taking turns step by step so that a drift in
    the machine's speed falls on all of them alike."""
    runs = {}
    for mode, (bf16, channels_last) in modes.items():
        model, x, loss_of = build()
        model.train()
        if channels_last:
            model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        runs[mode] = (model, x, loss_of, bf16, torch.optim.Adam(model.parameters(), lr=1e-4))
    times = {mode: [] for mode in modes}
    for i in range(steps + 2):  # two warm-up rounds
        for mode, (model, x, loss_of, bf16, optimizer) in runs.items():
            began = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_of(model, x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if i >= 2:
                times[mode].append(time.perf_counter() - began)
    return {mode: statistics.median(t) for mode, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per mode and case")
    parser.add_argument("--out", default=str(ROOT / "bench/results/cpu_autocast.json"))
    parser.add_argument("--only", default="", help="time only the cases whose name holds this")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    cases = {
        "resnet18 64px batch 8 (demo)": lambda: classifier_step("resnet18", 64, 8),
        "mobilenet_v2 64px batch 8 (demo)": lambda: classifier_step("mobilenet_v2", 64, 8),
        "resnet18 128px batch 8 (study)": lambda: classifier_step("resnet18", 128, 8),
        "mobilenet_v2 128px batch 8 (study)": lambda: classifier_step("mobilenet_v2", 128, 8),
        "yolov3-tiny 640x192 batch 16": lambda: detector_step("cfg/yolov3-tiny.cfg", 640, 192, 16),
        "yolov3-tiny 416x128 batch 16": lambda: detector_step("cfg/yolov3-tiny.cfg", 416, 128, 16),
        # The real frames' own resolution (1242x375) and a size between.
        "yolov3-tiny 832x256 batch 16": lambda: detector_step("cfg/yolov3-tiny.cfg", 832, 256, 16),
        "yolov3-tiny 1248x384 batch 16": lambda: detector_step(
            "cfg/yolov3-tiny.cfg", 1248, 384, 16
        ),
    }
    cases = {name: build for name, build in cases.items() if args.only in name}
    flags = cpu_flags()
    print(f"CPU bf16 flags: {flags or 'none'}; {torch.get_num_threads()} threads")
    # Without native instructions bfloat16 is emulated, several times slower than float32, and
    # the training code never uses it there: only the float32 modes are timed.
    modes = MODES if flags else {m: v for m, v in MODES.items() if not v[0]}
    results = []
    for name, build in cases.items():
        row = {"case": name, **time_modes(build, args.steps, modes)}
        base = row["float32"]
        ratios = {mode: base / row[mode] for mode in modes}
        row["speedup"] = ratios
        results.append(row)
        print(
            f"{name}: float32 {base * 1000:.0f} ms/step; "
            + ", ".join(f"{m} {r:.2f}x" for m, r in ratios.items() if m != "float32")
        )
    out = {
        "device": device_name(torch.device("cpu")),
        "cpu_bf16_flags": flags,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "code_version": code_version(),
        "steps": args.steps,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
