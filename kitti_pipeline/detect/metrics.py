"""Detection metrics: matching, precision/recall, AP (all-point, COCO's, 40-point).

Detections of every test image are ranked by score. Within an image, each detection in turn
matches the unmatched ground truth it overlaps most, if that IoU reaches the threshold: a true
positive; otherwise a false positive. Precision and recall then follow down the ranking:

    AP (all-point)   sum over recall steps of (r_k - r_{k-1}) * max precision at recall >= r_k
                     (PASCAL VOC 2010 onwards): the study's AP@0.5;
    AP@[.5:.95]      COCO's: at IoU 0.50, 0.55, ..., 0.95, the precision envelope read at 101
                     recall points, each image's 100 best detections (`coco_ap`, checked
                     against pycocotools);
    AP40 IoU 0.7     the mean, over recall 1/40, ..., 1, of the max precision at recall >= that
                     point, matched at IoU 0.7, every ground truth counted, nothing ignored.

These follow the study's protocol: YOLO labels, every object of the class counted. KITTI's own
AP by difficulty, with its ignore rules and recall sampling, is `detect.kitti`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import box_iou

from kitti_pipeline.detect.data import DetectionSet


@dataclass(frozen=True)
class RankedMatches:
    """A test set's detections after matching, ranked by score, each with the frame it is in.

    Every detection metric follows from these alone, and a frame-level bootstrap draw only
    reweights them: matching happens within a frame, so a frame drawn twice brings its matches
    twice.
    """

    frames: np.ndarray  # (D,) the frame of each detection
    scores: np.ndarray  # (D,) descending
    hits: np.ndarray  # (D,) true positives; (T, D) at several IoU thresholds (`coco_matches`)
    truths: np.ndarray  # (F,) counted ground truths of each frame


# Draws reweighted at once: (R, D) arrays of this many rows at a time bound the memory.
DRAWS_AT_ONCE = 100


def resampled_curves(
    matches: RankedMatches, draws: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Precision and recall down the ranking under each draw, `DRAWS_AT_ONCE` draws at a time.

    Args:
        matches: One run's ranked matches.
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


def resampled_average_precision(matches: RankedMatches, draws: np.ndarray) -> np.ndarray:
    """`average_precision` (all-point) of each draw, (R,)."""
    out = []
    for weights, precision, _, truths in resampled_curves(matches, draws):
        envelope = np.maximum.accumulate(precision[:, ::-1], 1)[:, ::-1]
        steps = np.divide(
            weights * matches.hits,
            truths[:, None],
            out=np.zeros_like(weights),
            where=truths[:, None] > 0,
        )
        out.append((steps * envelope).sum(1))
    return np.concatenate(out)


def resampled_points_ap(matches: RankedMatches, draws: np.ndarray, points: int = 40) -> np.ndarray:
    """`recall_points_ap` of each draw, (R,)."""
    levels = np.arange(1, points + 1) / points - 1e-12
    out = []
    for _, precision, recall, truths in resampled_curves(matches, draws):
        envelope = np.maximum.accumulate(precision[:, ::-1], 1)[:, ::-1]
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


def resampled_f1(matches: RankedMatches, draws: np.ndarray, conf_threshold: float) -> np.ndarray:
    """F1 of the detections scoring at least `conf_threshold`, under each draw, (R,)."""
    return resampled_thresholded(matches, draws, conf_threshold)["F1"]


def matches_to_dict(matches: RankedMatches) -> dict:
    """Ranked matches as JSON-ready lists."""
    return {
        "frames": matches.frames.tolist(),
        "scores": matches.scores.tolist(),
        "hits": matches.hits.tolist(),
        "truths": matches.truths.tolist(),
    }


def matches_from_dict(data: dict) -> RankedMatches:
    """The inverse of `matches_to_dict`."""
    hits = np.array(data["hits"], dtype=bool)
    return RankedMatches(
        np.array(data["frames"], dtype=np.int64).reshape(-1),
        np.array(data["scores"], dtype=float).reshape(-1),
        hits if hits.ndim == 2 else hits.reshape(-1),
        np.array(data["truths"], dtype=np.int64).reshape(-1),
    )


def thresholded_scores(
    scores: np.ndarray, hits: np.ndarray, num_truths: int, conf_threshold: float
) -> tuple[float, float, float]:
    """Precision, recall and F1 of the ranked detections scoring at least `conf_threshold`."""
    kept = hits[scores >= conf_threshold]
    tp = int(kept.sum())
    precision = tp / len(kept) if len(kept) else 0.0
    recall = tp / num_truths if num_truths else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def summary_f1(matches: RankedMatches, conf_threshold: float) -> float:
    """F1 of the detections scoring at least `conf_threshold`: `detection_summary`'s F1."""
    total = int(matches.truths.sum())
    return thresholded_scores(matches.scores, matches.hits, total, conf_threshold)[2]


def rank_matches(
    detections: list[torch.Tensor],
    truths: list[torch.Tensor],
    iou_threshold: float,
    ignored: list[torch.Tensor] | None = None,
) -> RankedMatches:
    """Mark each detection true or false positive, keeping the frame it is in.

    Args:
        detections: Per image, (N, 5+) rows `x1, y1, x2, y2, score, ...`.
        truths: Per image, (M, 4) ground-truth boxes.
        iou_threshold: Minimum IoU for a match.
        ignored: Per image, (M,) flags of truths that neither count nor punish: a detection
            that matches no counted truth but one of these leaves the ranking (KITTI's
            "don't care" objects and other difficulty levels).

    Returns:
        The detections ranked by descending score (stable), their frames and true-positive
        flags, and each frame's number of counted ground truths.
    """
    if ignored is None:
        ignored = [torch.zeros(len(g), dtype=torch.bool) for g in truths]
    frames, scores, hits = [], [], []
    for frame, (dets, gts, skip) in enumerate(zip(detections, truths, ignored, strict=True)):
        dets, ious = _ranked_ious(dets, gts)
        hit, dropped = greedy_matches(ious, np.array([iou_threshold]), skip.numpy())
        kept = ~dropped[0]
        frames += [frame] * int(kept.sum())
        scores.append(dets[kept, 4].numpy().astype(float))
        hits.append(hit[0, kept])
    scores = np.concatenate(scores) if scores else np.zeros(0)
    order = np.argsort(-scores, kind="stable")
    return RankedMatches(
        frames=np.array(frames, dtype=np.int64)[order],
        scores=scores[order],
        hits=(np.concatenate(hits) if hits else np.zeros(0, dtype=bool))[order],
        truths=np.array([int((~s).sum()) for s in ignored], dtype=np.int64),
    )


def match_at_thresholds(
    detections: list[torch.Tensor], truths: list[torch.Tensor], iou_thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """`match` at several IoU thresholds at once: one IoU matrix per frame, one pass down it.

    Without ignored truths no detection leaves the ranking, so every threshold shares it.

    Returns:
        Ranked scores (D,), true-positive flags (T, D) per threshold, and the truth count.
    """
    ranked = rank_at_thresholds(detections, truths, iou_thresholds)
    return ranked.scores, ranked.hits, int(ranked.truths.sum())


def rank_at_thresholds(
    detections: list[torch.Tensor], truths: list[torch.Tensor], iou_thresholds: np.ndarray
) -> RankedMatches:
    """`match_at_thresholds`, keeping the frames: ranked matches with (T, D) hits."""
    thresholds = np.asarray(iou_thresholds, dtype=float)
    frames, scores, hits = [], [], []
    for frame, (dets, gts) in enumerate(zip(detections, truths, strict=True)):
        dets, ious = _ranked_ious(dets, gts)
        frames += [frame] * len(dets)
        scores.append(dets[:, 4].numpy().astype(float))
        hits.append(greedy_matches(ious, thresholds, np.zeros(len(gts), dtype=bool))[0])
    scores = np.concatenate(scores) if scores else np.zeros(0)
    hits = np.concatenate(hits, 1) if hits else np.zeros((len(thresholds), 0), dtype=bool)
    order = np.argsort(-scores, kind="stable")
    return RankedMatches(
        frames=np.array(frames, dtype=np.int64)[order],
        scores=scores[order],
        hits=hits[:, order],
        truths=np.array([len(g) for g in truths], dtype=np.int64),
    )


def _ranked_ious(dets: torch.Tensor, gts: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """A frame's detections by descending score (stable), and their IoU with its truths."""
    dets = dets[torch.argsort(dets[:, 4], descending=True, stable=True)].cpu()
    gts = gts.cpu()
    ious = box_iou(dets[:, :4], gts[:, :4]) if len(gts) else torch.zeros(len(dets), 0)
    return dets, ious.numpy()


def greedy_matches(
    ious: np.ndarray, thresholds: np.ndarray, ignored: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one frame's ranked detections at every threshold in one pass.

    Each detection in turn takes the untaken counted truth it overlaps most, if that IoU
    reaches the threshold (a true positive); failing that, the untaken ignored truth it overlaps
    most (the detection is dropped); else it is a false positive. A tie goes to the truth listed
    first.

    Args:
        ious: (D, G) IoU of the detections, best first, with the truths.
        thresholds: (T,) IoU thresholds.
        ignored: (G,) flags of the truths that neither count nor punish.

    Returns:
        Per threshold and detection: (T, D) true positive, and (T, D) dropped.
    """
    # In float32 as the IoUs are: a threshold compares as torch compares a float32 tensor.
    thresholds = np.asarray(thresholds, dtype=np.float32)
    ious = np.asarray(ious, dtype=np.float32)
    count, size = len(thresholds), len(ious)
    hit = np.zeros((count, size), dtype=bool)
    dropped = np.zeros((count, size), dtype=bool)
    if ious.shape[1] == 0:
        return hit, dropped
    taken = np.zeros((count, ious.shape[1]), dtype=bool)
    rows = np.arange(count)
    lowest = thresholds.min()
    for k in range(size):
        if ious[k].max() < lowest:  # overlaps nothing enough at any threshold
            continue
        done = np.zeros(count, dtype=bool)
        for pool, flags in ((~ignored, hit), (ignored, dropped)):  # counted truths first
            candidates = np.where(taken | ~pool, np.float32(-1), ious[k])
            best = candidates.argmax(1)
            found = ~done & (candidates[rows, best] >= thresholds)
            taken[rows[found], best[found]] = True
            flags[found, k] = True
            done |= found
    return hit, dropped


def match(
    detections: list[torch.Tensor],
    truths: list[torch.Tensor],
    iou_threshold: float,
    ignored: list[torch.Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """`rank_matches` without the frames: ranked scores, true-positive flags, counted truths."""
    ranked = rank_matches(detections, truths, iou_threshold, ignored)
    return ranked.scores, ranked.hits, int(ranked.truths.sum())


def precision_recall(hits: np.ndarray, num_truths: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each detection down the ranking."""
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / max(num_truths, 1)
    return precision, recall


def average_precision(hits: np.ndarray, num_truths: int) -> float:
    """All-point interpolated AP of ranked detections."""
    if num_truths == 0 or len(hits) == 0:
        return 0.0
    precision, recall = precision_recall(hits, num_truths)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # max precision at recall >= r
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float((steps * envelope).sum())


def interpolated_pr(hits: np.ndarray, num_truths: int, points: int = 101) -> list[dict]:
    """The precision-recall curve at `points` recall levels 0, ..., 1 (COCO samples 101).

    Precision at recall r is the highest precision reached at any recall >= r (0 past the
    highest recall reached): the envelope that all-point AP integrates.
    """
    levels = np.linspace(0, 1, points)
    values = np.zeros(points)
    if len(hits) and num_truths:
        precision, recall = precision_recall(hits, num_truths)
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        first = np.searchsorted(recall, levels - 1e-12)  # first rank reaching each level
        reached = first < len(recall)
        values[reached] = envelope[first[reached]]
    return [
        {"recall": float(r), "precision": float(p)} for r, p in zip(levels, values, strict=True)
    ]


def recall_points_ap(hits: np.ndarray, num_truths: int, points: int = 40) -> float:
    """AP sampled at recall 1/points .. 1 (KITTI's 40-point AP)."""
    if num_truths == 0 or len(hits) == 0:
        return 0.0
    precision, recall = precision_recall(hits, num_truths)
    total = 0.0
    for r in np.arange(1, points + 1) / points:
        reached = precision[recall >= r - 1e-12]
        total += reached.max() if len(reached) else 0.0
    return float(total / points)


# IoU 0.50, 0.55, ..., 0.95: COCO's thresholds, 0.5 first and 0.7 among them.
SUMMARY_IOUS = np.round(np.arange(0.5, 0.96, 0.05), 2)
# COCO's 101 recall points, as pycocotools' COCOeval spaces them, and its per-image cap.
COCO_RECALLS = np.linspace(0.0, 1.0, int(np.round(1.0 / 0.01)) + 1, endpoint=True)
COCO_MAX_DETECTIONS = 100


def coco_ap(
    detections: list[torch.Tensor],
    truths: list[torch.Tensor],
    max_detections: int = COCO_MAX_DETECTIONS,
) -> float:
    """AP@[.5:.95] as COCO's `COCOeval` computes it for one category (area all, maxDets 100).

    Each image keeps its `max_detections` best; at each IoU threshold 0.50, ..., 0.95 the
    precision envelope is read at 101 recall points 0, 0.01, ..., 1 (0 past the highest recall)
    and averaged; AP is the mean over the thresholds. Matching is this module's greedy one: it
    differs from COCOeval's only when two truths overlap a detection with exactly equal IoU
    (COCOeval takes the later one). 0 without ground truths (COCOeval reports -1).
    """
    matches = coco_matches(detections, truths, max_detections)
    return coco_points_ap(matches.hits, int(matches.truths.sum()))


def coco_matches(
    detections: list[torch.Tensor],
    truths: list[torch.Tensor],
    max_detections: int = COCO_MAX_DETECTIONS,
) -> RankedMatches:
    """The ranked matches behind `coco_ap`: each image's `max_detections` best, matched at
    IoU 0.50, ..., 0.95 ((T, D) hits)."""
    capped = [
        d[torch.argsort(d[:, 4], descending=True, stable=True)][:max_detections] for d in detections
    ]
    return rank_at_thresholds(capped, truths, SUMMARY_IOUS)


def coco_points_ap(hits: np.ndarray, num_truths: int) -> float:
    """The mean over thresholds of COCO's 101-point AP, from ranked hits (T, D)."""
    if num_truths == 0:
        return 0.0
    weights = np.ones((1, hits.shape[1]))
    return float(_coco_points(hits, weights, np.array([float(num_truths)]))[0])


def resampled_coco_ap(matches: RankedMatches, draws: np.ndarray) -> np.ndarray:
    """`coco_points_ap` of each draw, (R,), from `coco_matches`."""
    out = []
    for start in range(0, len(draws), DRAWS_AT_ONCE):
        chunk = draws[start : start + DRAWS_AT_ONCE]
        weights = chunk[:, matches.frames].astype(float)
        out.append(_coco_points(matches.hits, weights, (chunk @ matches.truths).astype(float)))
    return np.concatenate(out)


def _coco_points(hits: np.ndarray, weights: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """COCO's AP@[.5:.95] of ranked hits (T, D) under detection weights (r, D) with (r,) truths:
    a weight of 2 counts a detection as its frame drawn twice would. 0 without truths."""
    points = np.zeros((len(weights), len(hits)))
    sampled = np.zeros(len(COCO_RECALLS))
    for t, row in enumerate(hits):
        tp, fp = np.cumsum(weights * row, 1), np.cumsum(weights * ~row, 1)
        recall = np.divide(tp, truths[:, None], out=np.zeros_like(tp), where=truths[:, None] > 0)
        precision = tp / (tp + fp + np.spacing(1))  # as COCOeval divides
        envelope = np.maximum.accumulate(precision[:, ::-1], 1)[:, ::-1]
        for i in range(len(weights)):
            first = np.searchsorted(recall[i], COCO_RECALLS, side="left")
            reached = first < recall.shape[1]
            sampled[:] = 0
            sampled[reached] = envelope[i, first[reached]]
            points[i, t] = sampled.mean()
    return np.where(truths > 0, points.mean(1), 0.0)


def detection_summary(
    detections: list[torch.Tensor],
    truths: list[torch.Tensor],
    conf_threshold: float,
) -> dict[str, float]:
    """Table 6's figures, COCO's AP@[.5:.95] and the all-truths AP40 at IoU 0.7, on a set.

    Precision, recall and F1 count detections scoring at least `conf_threshold` at IoU 0.5.
    """
    scores, hits, n = match_at_thresholds(detections, truths, SUMMARY_IOUS)
    precision, recall, f1 = thresholded_scores(scores, hits[0], n, conf_threshold)
    capped = all(len(d) <= COCO_MAX_DETECTIONS for d in detections)
    return {
        "precision": precision,
        "recall": recall,
        "AP50": average_precision(hits[0], n),
        "F1": f1,
        # One matching pass serves every figure unless an image holds more than COCO keeps.
        "AP50_95": coco_points_ap(hits, n) if capped else coco_ap(detections, truths),
        "AP40_iou70_all_truths": recall_points_ap(hits[SUMMARY_IOUS.tolist().index(0.7)], n),
        "ground_truths": n,
    }


def class_summary(
    detections: list[torch.Tensor], data: DetectionSet, class_id: int, conf_threshold: float
) -> dict[str, float]:
    """`detection_summary` of one class, from detections of every class."""
    truths = [t[t[:, 0] == class_id, 1:].cpu() for t in data.targets]
    mine = [d[d[:, 5] == class_id] for d in detections]
    return detection_summary(mine, truths, conf_threshold)
