"""KITTI's 2D detection AP by difficulty level, as KITTI's devkit computes it.

The reference is the devkit's `cpp/evaluate_object.cpp` (its AP|R40 since 2019), followed step
by step and held equal to a line-by-line port of it in the tests:

- **Levels.** A ground truth of the evaluated type counts at a level when its occlusion and
  truncation are at most the level's and its box is taller than the level's minimum (a car
  exactly 25 px tall is not moderate); otherwise it is ignored, as are neighbouring types (vans
  for cars, sitting persons for pedestrians). Detections shorter than the minimum are ignored.

        level      min box height   max occlusion       max truncation
        easy       40 px            0 (fully visible)   0.15
        moderate   25 px            1 (partly)          0.30
        hard       25 px            2 (largely)         0.50

- **Matching**, ground truth by ground truth in label order: each takes, among the detections not
  yet taken with IoU above the threshold (strictly; 0.7 for cars), the one it overlaps most, or
  if only ignored (too short) detections qualify, the first of them. A counted truth so matched
  is a true positive; an ignored truth, or a match to an ignored detection, takes the detection
  out of the count. Detections left over are false positives, except those whose area lies more
  than the threshold inside a `DontCare` region.
- **Recall sampling.** One pass without a score threshold gives the scores of the true
  positives; of these, 41 are picked: for recall 0, 1/40, ..., 1 in turn, the true positive
  whose recall is nearest (at most one per true positive). Matching is redone with detections
  scoring at least each picked score, precision is made non-increasing from the right over the
  picked scores only, and AP40 is the sum of the last 40 of the 41 precisions over 40 (missing
  ones count 0). With few cars this is far from the exact curve: three cars, all found, give
  2/40 = 0.05.

A frame-level bootstrap draw counts each frame as often as it is drawn, with its true-positive
scores, truths and counts at each threshold: `KittiCurve` holds all three per frame, so a draw
needs no matching.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kitti_pipeline.data.labels import KITTI_NEIGHBOURS, KittiObject, same_kitti_type

KITTI_LEVELS = {"easy": (40.0, 0, 0.15), "moderate": (25.0, 1, 0.30), "hard": (25.0, 2, 0.50)}
SAMPLE_POINTS = 41


@dataclass(frozen=True)
class KittiFrame:
    """One frame cleaned for one type and level, as the devkit's `cleanData` leaves it."""

    scores: np.ndarray  # (D,) detections, in the order given
    short: np.ndarray  # (D,) detections below the level's minimum height: ignored
    counted: np.ndarray  # (G,) truths that count at this level; the rest are ignored
    ious: np.ndarray  # (D, G) IoU of each detection with each truth
    inside: np.ndarray  # (D, K) the fraction of each detection inside each DontCare region


def clean_frame(
    detections: torch.Tensor, objects: list[KittiObject], kitti_type: str, level: str
) -> KittiFrame:
    """A frame's detections (N, 5+: x1, y1, x2, y2, score, ...) and `label_2` objects, cleaned."""
    min_height, max_occluded, max_truncated = KITTI_LEVELS[level]
    neighbour = KITTI_NEIGHBOURS.get(kitti_type, "")
    kept = [
        o
        for o in objects
        if same_kitti_type(o.type, kitti_type) or (neighbour and same_kitti_type(o.type, neighbour))
    ]
    counted = [
        same_kitti_type(o.type, kitti_type)
        and o.occluded <= max_occluded
        and o.truncated <= max_truncated
        and o.box[3] - o.box[1] > min_height
        for o in kept
    ]
    dets = detections.detach().cpu().double().numpy()
    dets = dets.reshape(-1, dets.shape[-1]) if dets.size else np.zeros((0, 5))
    boxes = dets[:, :4]
    truths = np.array([o.box for o in kept], dtype=float).reshape(-1, 4)
    dont_care = [o.box for o in objects if same_kitti_type(o.type, "DontCare")]
    return KittiFrame(
        scores=dets[:, 4],
        short=np.abs(boxes[:, 3] - boxes[:, 1]) < min_height,
        counted=np.array(counted, dtype=bool),
        ious=_overlap(boxes, truths, of_union=True),
        inside=_overlap(boxes, np.array(dont_care, dtype=float).reshape(-1, 4), of_union=False),
    )


def _overlap(boxes: np.ndarray, others: np.ndarray, of_union: bool) -> np.ndarray:
    """(D, K) intersection over union, or over the area of each of `boxes`, as the devkit's
    `boxoverlap` computes them (no pixel added to widths)."""
    lt = np.maximum(boxes[:, None, :2], others[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], others[None, :, 2:])
    wh = rb - lt
    inter = np.where((wh > 0).all(-1), wh.prod(-1), 0.0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    if not of_union:
        return np.divide(inter, area[:, None], out=np.zeros_like(inter), where=inter > 0)
    other_area = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area[:, None] + other_area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def true_positive_scores(frame: KittiFrame, iou: float) -> np.ndarray:
    """The devkit's pass without a threshold: each truth takes the best-scoring detection
    above `iou`; the scores of the counted truths' matches to kept detections."""
    ious = frame.ious
    taken = np.zeros(len(frame.scores), dtype=bool)
    scores = []
    for i in range(ious.shape[1]):
        candidates = ~taken & (ious[:, i] > iou)
        if not candidates.any():
            continue
        best = int(np.flatnonzero(candidates)[np.argmax(frame.scores[candidates])])
        taken[best] = True
        if frame.counted[i] and not frame.short[best]:
            scores.append(frame.scores[best])
    return np.array(scores, dtype=float)


def statistics_at(frame: KittiFrame, iou: float, threshold: float) -> tuple[int, int, int]:
    """True positives, false positives and missed counted truths among the detections scoring
    at least `threshold`: the devkit's `computeStatistics` with false positives."""
    ious = frame.ious
    active = frame.scores >= threshold
    taken = np.zeros(len(frame.scores), dtype=bool)
    tp = fn = 0
    for i in range(ious.shape[1]):
        candidates = active & ~taken & (ious[:, i] > iou)
        valid = candidates & ~frame.short
        if valid.any():
            best = int(np.flatnonzero(valid)[np.argmax(ious[valid, i])])
            taken[best] = True
            tp += int(frame.counted[i])
        elif candidates.any():  # only too-short detections: the first of them, ignored
            taken[int(np.flatnonzero(candidates)[0])] = True
        elif frame.counted[i]:
            fn += 1
    left = active & ~taken & ~frame.short
    fp = int(left.sum())
    if left.any():
        inside = frame.inside > iou
        for region in range(inside.shape[1]):  # each region takes what is left, in turn
            hit = left & inside[:, region]
            fp -= int(hit.sum())
            left &= ~hit
    return tp, fp, fn


@dataclass(frozen=True)
class KittiCurve:
    """What KITTI's AP of one type and level needs, frame by frame, for any draw of frames."""

    tp_scores: list[np.ndarray]  # per frame: its true positives' scores (threshold-free pass)
    truths: np.ndarray  # (F,) counted truths per frame
    thresholds: np.ndarray  # (S,) every true-positive score, descending, unique
    statistics: np.ndarray  # (F, S, 3) tp, fp, fn of each frame at each threshold


def kitti_curve(
    detections: list[torch.Tensor],
    objects: list[list[KittiObject]],
    kitti_type: str,
    level: str,
    iou: float = 0.7,
) -> KittiCurve:
    """Clean and match every frame once, at every score that can become a threshold.

    Args:
        detections: Per frame, (N, 5+) rows `x1, y1, x2, y2, score, ...` in frame pixels.
        objects: Per frame, its `label_2` objects.
        kitti_type: The KITTI type detected, e.g. `Car`.
        level: `easy`, `moderate` or `hard`.
        iou: 0.7 for cars, 0.5 for pedestrians and cyclists in KITTI.
    """
    frames = [
        clean_frame(d, o, kitti_type, level) for d, o in zip(detections, objects, strict=True)
    ]
    tp_scores = [true_positive_scores(f, iou) for f in frames]
    every = np.concatenate(tp_scores) if tp_scores else np.zeros(0)
    thresholds = np.unique(every)[::-1].copy()
    statistics = np.zeros((len(frames), len(thresholds), 3), dtype=np.int64)
    for k, frame in enumerate(frames):
        # A frame's counts change only where a threshold passes one of its detections' scores.
        done: dict[int, tuple[int, int, int]] = {}
        for s, threshold in enumerate(thresholds):
            kept = int((frame.scores >= threshold).sum())
            if kept not in done:
                done[kept] = statistics_at(frame, iou, threshold)
            statistics[k, s] = done[kept]
    return KittiCurve(
        tp_scores=tp_scores,
        truths=np.array([int(f.counted.sum()) for f in frames], dtype=np.int64),
        thresholds=thresholds,
        statistics=statistics,
    )


def sampled_thresholds(scores: np.ndarray, truths: float) -> list[float]:
    """The devkit's `getThresholds`: of the true-positive scores (descending), those whose
    recall is nearest to 0, 1/40, ..., 1 in turn, at most one per true positive."""
    picked, target = [], 0.0
    last = len(scores) - 1
    for i, score in enumerate(scores):
        left = (i + 1) / truths
        right = (i + 2) / truths if i < last else left
        if right - target < target - left and i < last:
            continue
        picked.append(score)
        target += 1.0 / (SAMPLE_POINTS - 1.0)
    return picked


def resampled_kitti_ap(curve: KittiCurve, draws: np.ndarray) -> np.ndarray:
    """KITTI's AP40 under each draw (R, F) of how often each frame counts, (R,)."""
    index = {float(t): s for s, t in enumerate(curve.thresholds)}
    out = np.zeros(len(draws))
    for r, draw in enumerate(draws):
        truths = float(draw @ curve.truths)
        if truths == 0:
            continue
        drawn = [np.repeat(s, c) for s, c in zip(curve.tp_scores, draw, strict=True)]
        scores = np.sort(np.concatenate([np.zeros(0), *drawn]))[::-1]
        # At most 41 samples: the devkit's precision array has no room for more.
        picked = [index[float(t)] for t in sampled_thresholds(scores, truths)][:SAMPLE_POINTS]
        counts = np.tensordot(draw, curve.statistics[:, picked], axes=(0, 0))  # (P, 3)
        precision = np.zeros(SAMPLE_POINTS)
        detected = counts[:, 0] + counts[:, 1]
        precision[: len(picked)] = np.divide(
            counts[:, 0], detected, out=np.zeros(len(picked)), where=detected > 0
        )
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        out[r] = envelope[1:].sum() / (SAMPLE_POINTS - 1)
    return out


def curve_to_dict(curve: KittiCurve) -> dict:
    """A curve as JSON-ready lists (`evaluate_detector --matches`)."""
    return {
        "tp_scores": [s.tolist() for s in curve.tp_scores],
        "truths": curve.truths.tolist(),
        "thresholds": curve.thresholds.tolist(),
        "statistics": curve.statistics.tolist(),
    }


def curve_from_dict(data: dict) -> KittiCurve:
    """The inverse of `curve_to_dict`."""
    thresholds = np.array(data["thresholds"], dtype=float).reshape(-1)
    return KittiCurve(
        tp_scores=[np.array(s, dtype=float).reshape(-1) for s in data["tp_scores"]],
        truths=np.array(data["truths"], dtype=np.int64).reshape(-1),
        thresholds=thresholds,
        statistics=np.array(data["statistics"], dtype=np.int64).reshape(
            len(data["truths"]), len(thresholds), 3
        ),
    )


def curve_ap(curve: KittiCurve) -> float:
    """KITTI's AP40 of the curve's frames, each counted once."""
    return float(resampled_kitti_ap(curve, np.ones((1, len(curve.truths)), dtype=np.int64))[0])


def kitti_level_ap(
    detections: list[torch.Tensor],
    objects: list[list[KittiObject]],
    kitti_type: str,
    level: str,
    iou: float = 0.7,
) -> float:
    """KITTI's AP|R40 of one type at one level on these frames (`kitti_curve`)."""
    return curve_ap(kitti_curve(detections, objects, kitti_type, level, iou))
