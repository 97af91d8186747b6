"""Validation matching: every IoU threshold in one pass, against a pass per threshold.

`detect.metrics.detection_summary` matches a test set's detections at COCO's ten IoU thresholds
(0.50 to 0.95; 0.5 and 0.7 among them) with one IoU matrix per frame and one pass down its
ranked detections (`greedy_matches`). The baseline is the matching this project used before
(tests/reference_metrics.py): one pass per threshold, 12 in all (0.5, the ten COCO thresholds
and 0.7), a torch reduction per detection. Both run here on the same generated frames: about
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
from kitti_pipeline.detect.metrics import (
    SUMMARY_IOUS,
    average_precision,
    detection_summary,
    recall_points_ap,
    thresholded_scores,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.reference_metrics import match_loop  # noqa: E402


def baseline_summary(detections, truths, conf_threshold):
    """`detection_summary` as it was: a matching pass for each threshold."""
    scores, hits, n = match_loop(detections, truths, 0.5)
    precision, recall, f1 = thresholded_scores(scores, hits, n, conf_threshold)
    coco = [average_precision(match_loop(detections, truths, t)[1], n) for t in SUMMARY_IOUS]
    return {
        "precision": precision,
        "recall": recall,
        "AP50": average_precision(hits, n),
        "F1": f1,
        "AP50_95": float(np.mean(coco)),
        "kitti_AP40_iou70": recall_points_ap(match_loop(detections, truths, 0.7)[1], n),
        "ground_truths": n,
    }


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
    ours = detection_summary(detections, truths, 0.25)
    assert ours == baseline_summary(detections, truths, 0.25), "the two summaries differ"
    base = seconds(lambda: baseline_summary(detections, truths, 0.25), args.repeats)
    new = seconds(lambda: detection_summary(detections, truths, 0.25), args.repeats)
    print(
        f"{args.frames} frames, {sum(len(d) for d in detections)} detections: "
        f"a pass per threshold {base:.3f} s, one pass {new:.3f} s: {base / new:.1f}x "
        f"(equal summaries: AP50 {ours['AP50']:.3f}, AP50_95 {ours['AP50_95']:.3f})"
    )
    out = {
        "device": device_name(torch.device("cpu")),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "code_version": code_version(),
        "frames": args.frames,
        "detections": sum(len(d) for d in detections),
        "baseline_seconds": base,
        "seconds": new,
        "speedup": base / new,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
