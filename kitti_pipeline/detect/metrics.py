"""Detection metrics from ranked matches (`detect.matching`): precision/recall and AP.

Precision and recall follow down the ranking of the matched detections:

    AP (all-point)   sum over recall steps of (r_k - r_{k-1}) * max precision at recall >= r_k
                     (PASCAL VOC 2010 onwards): the study's AP@0.5;
    AP@[.5:.95]      COCO's: at IoU 0.50, 0.55, ..., 0.95, the precision envelope read at 101
                     recall points, each image's 100 best detections (`coco_ap`, checked
                     against pycocotools);
    AP40 IoU 0.7     the mean, over recall 1/40, ..., 1, of the max precision at recall >= that
                     point, matched at IoU 0.7, every ground truth counted, nothing ignored.

One matching pass at every COCO threshold serves all of them. Each figure is
written once, over frame draws (`resampled_*`: how often each frame is drawn, for bootstrap
intervals); its plain value is the same function under one draw of every frame once.

These follow the study's protocol: YOLO labels, every object of the class counted. KITTI's own
AP by difficulty, with its ignore rules and recall sampling, is `detect.kitti`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from kitti_pipeline.detect.data import DetectionSet
from kitti_pipeline.detect.matching import (
    COCO_MAX_DETECTIONS,
    COCO_RECALLS,
    RankedMatches,
    rank_matches,
)

# Draws reweighted at once: (R, D) arrays of this many rows at a time bound the memory.
DRAWS_AT_ONCE = 100


def unit_draw(matches: RankedMatches) -> np.ndarray:
    """The one draw that takes every frame once, (1, F): under it a figure is its plain value."""
    return np.ones((1, len(matches.truths)), dtype=np.int64)


def resampled_curves(
    matches: RankedMatches, draws: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Precision and recall down the ranking under each draw, `DRAWS_AT_ONCE` draws at a time.

    Args:
        matches: One run's ranked matches at one threshold.
        draws: (R, F) how often each frame is drawn (`core.bootstrap.frame_resamples`).

    Yields:
        Per chunk of draws: weights (r, D), precision (r, D), recall (r, D) and ground truths (r,).
        A point before any drawn detection has precision 0.
    """
    for start in range(0, len(draws), DRAWS_AT_ONCE):
        chunk = draws[start : start + DRAWS_AT_ONCE]
        weights = chunk[:, matches.frames].astype(float)  # (r, D)
        tp = np.cumsum(weights * matches.hits, 1)
        count = np.cumsum(weights, 1)
        truths = chunk @ matches.truths
        precision = np.divide(tp, count, out=np.zeros_like(tp), where=count > 0)
        recall = np.divide(tp, truths[:, None], out=np.zeros_like(tp), where=truths[:, None] > 0)
        yield weights, precision, recall, truths


def envelope_of(precision: np.ndarray) -> np.ndarray:
    """The max precision at this recall or beyond, down each row of (r, D) precisions."""
    return np.maximum.accumulate(precision[:, ::-1], 1)[:, ::-1]


def resampled_average_precision(matches: RankedMatches, draws: np.ndarray) -> np.ndarray:
    """All-point AP of each draw, (R,): the recall gained at each hit times the envelope."""
    out = []
    for weights, precision, _, truths in resampled_curves(matches, draws):
        steps = np.divide(
            weights * matches.hits,
            truths[:, None],
            out=np.zeros_like(weights),
            where=truths[:, None] > 0,
        )
        out.append((steps * envelope_of(precision)).sum(1))
    return np.concatenate(out)


def resampled_points_ap(matches: RankedMatches, draws: np.ndarray, points: int = 40) -> np.ndarray:
    """AP sampled at recall 1/points, ..., 1 (KITTI's 40-point AP) of each draw, (R,)."""
    levels = np.arange(1, points + 1) / points - 1e-12
    out = []
    for _, precision, recall, truths in resampled_curves(matches, draws):
        envelope = envelope_of(precision)
        ap = np.zeros(len(precision))
        for i in np.flatnonzero(truths > 0):
            first = np.searchsorted(recall[i], levels, side="left")
            ap[i] = envelope[i, first[first < recall.shape[1]]].sum() / points
        out.append(ap)
    return np.concatenate(out)


def resampled_thresholded(
    matches: RankedMatches, draws: np.ndarray, conf_threshold: float
) -> dict[str, np.ndarray]:
    """Precision, recall and F1 of the detections scoring at least `conf_threshold`, under
    each draw: `{name: (R,)}`."""
    kept = matches.scores >= conf_threshold
    weights = draws[:, matches.frames][:, kept].astype(float)
    tp = (weights * matches.hits[kept]).sum(1)
    count = weights.sum(1)
    truths = draws @ matches.truths
    precision = np.divide(tp, count, out=np.zeros_like(tp), where=count > 0)
    recall = np.divide(tp, truths, out=np.zeros_like(tp), where=truths > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "F1": f1}


def resampled_coco_ap(matches: RankedMatches, draws: np.ndarray) -> np.ndarray:
    """COCO's AP@[.5:.95] of each draw, (R,), from capped matches at `SUMMARY_IOUS`: the mean
    over thresholds of the envelope read at 101 recall points (0 past the highest recall)."""
    out = []
    for start in range(0, len(draws), DRAWS_AT_ONCE):
        chunk = draws[start : start + DRAWS_AT_ONCE]
        weights = chunk[:, matches.frames].astype(float)  # (r, D)
        truths = (chunk @ matches.truths).astype(float)
        points = np.zeros((len(weights), len(matches.hits)))
        for t, row in enumerate(matches.hits):
            tp, fp = np.cumsum(weights * row, 1), np.cumsum(weights * ~row, 1)
            recall = np.divide(
                tp, truths[:, None], out=np.zeros_like(tp), where=truths[:, None] > 0
            )
            envelope = envelope_of(tp / (tp + fp + np.spacing(1)))  # as COCOeval divides
            for i in range(len(weights)):
                first = np.searchsorted(recall[i], COCO_RECALLS, side="left")
                reached = first < recall.shape[1]
                points[i, t] = envelope[i, first[reached]].sum() / len(COCO_RECALLS)
        out.append(np.where(truths > 0, points.mean(1), 0.0))
    return np.concatenate(out)


def average_precision(matches: RankedMatches) -> float:
    """All-point AP of ranked matches at one threshold."""
    return float(resampled_average_precision(matches, unit_draw(matches))[0])


def recall_points_ap(matches: RankedMatches, points: int = 40) -> float:
    """AP sampled at recall 1/points .. 1 (KITTI's 40-point AP), at one threshold."""
    return float(resampled_points_ap(matches, unit_draw(matches), points)[0])


def thresholded_scores(matches: RankedMatches, conf_threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of the detections scoring at least `conf_threshold`."""
    drawn = resampled_thresholded(matches, unit_draw(matches), conf_threshold)
    return {name: float(value[0]) for name, value in drawn.items()}


def coco_points_ap(matches: RankedMatches) -> float:
    """COCO's AP@[.5:.95] of capped matches at `SUMMARY_IOUS`."""
    return float(resampled_coco_ap(matches, unit_draw(matches))[0])


def interpolated_pr(matches: RankedMatches, points: int = 101) -> list[dict]:
    """The precision-recall curve at `points` recall levels 0, ..., 1 (COCO samples 101).

    Precision at recall r is the highest precision reached at any recall >= r (0 past the
    highest recall reached): the envelope that all-point AP integrates.
    """
    levels = np.linspace(0, 1, points)
    values = np.zeros(points)
    _, precision, recall, _ = next(resampled_curves(matches, unit_draw(matches)))
    if recall.shape[1]:
        first = np.searchsorted(recall[0], levels - 1e-12)  # first rank reaching each level
        reached = first < recall.shape[1]
        values[reached] = envelope_of(precision)[0, first[reached]]
    return [
        {"recall": float(r), "precision": float(p)} for r, p in zip(levels, values, strict=True)
    ]


def coco_ap(
    detections: list[torch.Tensor],
    truths: list[torch.Tensor],
    max_detections: int = COCO_MAX_DETECTIONS,
) -> float:
    """AP@[.5:.95] as COCO's `COCOeval` computes it for one category (area all, each image's
    `max_detections` best: COCO's maxDets 100).

    Matching is this module's greedy one: it differs from COCOeval's only when two truths
    overlap a detection with exactly equal IoU (COCOeval takes the later one). 0 without
    ground truths (COCOeval reports -1).
    """
    return coco_points_ap(rank_matches(detections, truths).capped(max_detections))


def summarise(matches: RankedMatches, conf_threshold: float) -> dict[str, float]:
    """Table 6's figures, COCO's AP@[.5:.95] and the all-truths AP40 at IoU 0.7, from matches
    at `SUMMARY_IOUS`. Precision, recall and F1 count detections scoring at least
    `conf_threshold` at IoU 0.5."""
    loose = matches.at(0.5)
    thresholded = thresholded_scores(loose, conf_threshold)
    return {
        "precision": thresholded["precision"],
        "recall": thresholded["recall"],
        "AP50": average_precision(loose),
        "F1": thresholded["F1"],
        "AP50_95": coco_points_ap(matches.capped()),
        "AP40_iou70_all_truths": recall_points_ap(matches.at(0.7)),
        "ground_truths": int(matches.truths.sum()),
    }


def detection_summary(
    detections: list[torch.Tensor], truths: list[torch.Tensor], conf_threshold: float
) -> dict[str, float]:
    """`summarise` of detections against truths, per image."""
    return summarise(rank_matches(detections, truths), conf_threshold)


def class_summary(
    detections: list[torch.Tensor], data: DetectionSet, class_id: int, conf_threshold: float
) -> dict[str, float]:
    """`detection_summary` of one class, from detections of every class."""
    truths = [t[t[:, 0] == class_id, 1:].cpu() for t in data.targets]
    mine = [d[d[:, 5] == class_id] for d in detections]
    return detection_summary(mine, truths, conf_threshold)
