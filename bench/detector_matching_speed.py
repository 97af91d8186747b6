"""Validation matching: every IoU threshold in one pass, against a pass per threshold.

`detect.metrics.detection_summary` (the val metrics of every evaluation, and the test metrics)
matches a set's detections at COCO's ten IoU thresholds (0.50 to 0.95; 0.5 and 0.7 among them)
with one IoU matrix per frame and one pass down its ranked detections (`rank_matches`).
The baseline is the matching this project used before (tests/reference_metrics.py): one pass
per threshold, 12 in all (0.5, the ten COCO thresholds and 0.7), a torch reduction per
detection. Both run here on the same generated frames: about
100 detections per frame (what post-processing above confidence 0.001 leaves) around 8 cars.

    python bench/detector_matching_speed.py [--frames 100] [--repeats 5]

Prints the seconds of each and the ratio, and writes bench/results/detector_matching_cpu.json.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from timing import device_name

from kitti_pipeline.core.version import code_version
from kitti_pipeline.detect.matching import SUMMARY_IOUS, rank_matches

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.reference_metrics import match_loop  # noqa: E402


def baseline(detections, truths):
    """The matching as it was: a pass per threshold, 0.5, the ten COCO thresholds and 0.7."""
    return [match_loop(detections, truths, t)[1] for t in (0.5, *SUMMARY_IOUS, 0.7)]


def ours(detections, truths):
    return rank_matches(detections, truths).hits


def frames(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    detections, truths = [], []
    for _ in range(count):
        xy = rng.uniform(0, 1100, (8, 2))
        gts = np.c_[xy, xy + rng.uniform(20, 140, (8, 2))]
        near = np.repeat(gts, 4, 0) + rng.normal(0, 8, (32, 4))
        far = rng.uniform(0, 1100, (68, 2))
        dets = np.r_[near, np.c_[far, far + rng.uniform(10, 100, (68, 2))]]
        dets[:, 2:] = np.maximum(dets[:, 2:], dets[:, :2] + 1)
        detections.append(torch.tensor(np.c_[dets, rng.random(100)], dtype=torch.float32))
        truths.append(torch.tensor(gts, dtype=torch.float32))
    return detections, truths


def seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench/results/detector_matching_cpu.json"))
    args = parser.parse_args()
    detections, truths = frames(args.frames)
    old, new = baseline(detections, truths), ours(detections, truths)
    assert all((a == b).all() for a, b in zip(old[1:-1], new, strict=True)), "matches differ"
    base = seconds(lambda: baseline(detections, truths), args.repeats)
    one = seconds(lambda: ours(detections, truths), args.repeats)
    print(
        f"{args.frames} frames, {sum(len(d) for d in detections)} detections: "
        f"a pass per threshold {base:.3f} s, one pass {one:.3f} s: {base / one:.1f}x "
        f"(equal true positives at every threshold)"
    )
    out = {
        "device": device_name(torch.device("cpu")),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "code_version": code_version(),
        "frames": args.frames,
        "detections": sum(len(d) for d in detections),
        "baseline_seconds": base,
        "seconds": one,
        "speedup": base / one,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
