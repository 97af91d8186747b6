"""Detection metrics: matching, precision/recall, AP (all-point, COCO-style, KITTI 40-point).

Detections of every test image are ranked by score. Within an image, each detection in turn
matches the unmatched ground truth it overlaps most, if that IoU reaches the threshold: a true
positive; otherwise a false positive. Precision and recall then follow down the ranking:

    AP (all-point)   sum over recall steps of (r_k - r_{k-1}) * max precision at recall >= r_k
                     (PASCAL VOC 2010 onwards);
    AP@[.5:.95]      the mean of all-point AP at IoU 0.50, 0.55, ..., 0.95 (COCO's summary);
    KITTI AP40       the mean, over recall 1/40, 2/40, ..., 1, of the max precision at recall >=
                     that point, at IoU 0.7 for cars; by difficulty from native `label_2` files:

        level      min box height   max occlusion   max truncation
        easy       40 px            0 (fully visible)   0.15
        moderate   25 px            1 (partly)          0.30
        hard       25 px            2 (largely)         0.50

    As in KITTI's devkit, cars outside a level, vans (for cars) and `DontCare` regions are
    ignored: detections on them neither count nor punish; detections shorter than the level's
    minimum height are ignored too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import box_iou

from kitti_pipeline.data.labels import KittiObject
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
    hits: np.ndarray  # (D,) true positives
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


def resampled_recall_points_ap(
    matches: RankedMatches, draws: np.ndarray, points: int = 40
) -> np.ndarray:
    """`recall_points_ap` (KITTI's 40 points) of each draw, (R,)."""
    levels = np.arange(1, points + 1) / points - 1e-12
    out = []
    for _, precision, recall, truths in resampled_curves(matches, draws):
        envelope = np.maximum.accumulate(precision[:, ::-1], 1)[:, ::-1]
        for row in range(len(truths)):
            first = np.searchsorted(recall[row], levels)  # first point reaching each level
            reached = first < recall.shape[1]
            total = envelope[row, first[reached]].sum() if truths[row] > 0 else 0.0
            out.append(total / points)
    return np.array(out)


def resampled_f1(matches: RankedMatches, draws: np.ndarray, conf_threshold: float) -> np.ndarray:
    """F1 of the detections scoring at least `conf_threshold`, under each draw, (R,)."""
    kept = matches.scores >= conf_threshold
    weights = draws[:, matches.frames][:, kept].astype(float)
    tp = (weights * matches.hits[kept]).sum(1)
    count = weights.sum(1)
    truths = draws @ matches.truths
    precision = np.divide(tp, count, out=np.zeros_like(tp), where=count > 0)
    recall = np.divide(tp, truths, out=np.zeros_like(tp), where=truths > 0)
    denom = precision + recall
    return np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)


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
    return RankedMatches(
        np.array(data["frames"], dtype=np.int64).reshape(-1),
        np.array(data["scores"], dtype=float).reshape(-1),
        np.array(data["hits"], dtype=bool).reshape(-1),
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
    thresholds = np.asarray(iou_thresholds, dtype=float)
    scores, hits = [], []
    for dets, gts in zip(detections, truths, strict=True):
        dets, ious = _ranked_ious(dets, gts)
        scores.append(dets[:, 4].numpy().astype(float))
        hits.append(greedy_matches(ious, thresholds, np.zeros(len(gts), dtype=bool))[0])
    scores = np.concatenate(scores) if scores else np.zeros(0)
    hits = np.concatenate(hits, 1) if hits else np.zeros((len(thresholds), 0), dtype=bool)
    order = np.argsort(-scores, kind="stable")
    return scores[order], hits[:, order], sum(len(g) for g in truths)


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


def detection_summary(
    detections: list[torch.Tensor],
    truths: list[torch.Tensor],
    conf_threshold: float,
) -> dict[str, float]:
    """Table 6's figures and the COCO- and KITTI-style APs for one model on a test set.

    Precision, recall and F1 count detections scoring at least `conf_threshold` at IoU 0.5.
    """
    scores, hits, n = match_at_thresholds(detections, truths, SUMMARY_IOUS)
    precision, recall, f1 = thresholded_scores(scores, hits[0], n, conf_threshold)
    return {
        "precision": precision,
        "recall": recall,
        "AP50": average_precision(hits[0], n),
        "F1": f1,
        "AP50_95": float(np.mean([average_precision(h, n) for h in hits])),
        "kitti_AP40_iou70": recall_points_ap(hits[SUMMARY_IOUS.tolist().index(0.7)], n),
        "ground_truths": n,
    }


KITTI_LEVELS = {"easy": (40.0, 0, 0.15), "moderate": (25.0, 1, 0.30), "hard": (25.0, 2, 0.50)}
KITTI_NEIGHBOURS = {"Car": "Van", "Pedestrian": "Person_sitting"}


def kitti_level_matches(
    detections: list[torch.Tensor],
    objects: list[list[KittiObject]],
    kitti_type: str,
    level: str,
    iou_threshold: float = 0.7,
) -> RankedMatches:
    """The ranked matches behind KITTI's AP of one class at one difficulty level, frame by frame.

    Args:
        detections: Per frame, (N, 5+) rows `x1, y1, x2, y2, score, ...` in frame pixels.
        objects: Per frame, its `label_2` objects.
        kitti_type: The KITTI type detected, e.g. `Car`.
        level: `easy`, `moderate` or `hard`.
        iou_threshold: 0.7 for cars, 0.5 for pedestrians and cyclists in KITTI.

    Returns:
        The level's matches: cars of other levels, vans and `DontCare` regions ignored.
    """
    min_height, max_occluded, max_truncated = KITTI_LEVELS[level]
    kept_dets, truths, ignored = [], [], []
    for dets, objs in zip(detections, objects, strict=True):
        cares = [o for o in objs if o.type != "DontCare"]
        boxes = torch.tensor([o.box for o in cares], dtype=torch.float32).reshape(-1, 4)
        counted = torch.tensor(
            [
                o.type == kitti_type
                and o.box[3] - o.box[1] >= min_height
                and 0 <= o.occluded <= max_occluded
                and o.truncated <= max_truncated
                for o in cares
            ],
            dtype=torch.bool,
        )
        relevant = torch.tensor(
            [o.type in (kitti_type, KITTI_NEIGHBOURS.get(kitti_type)) for o in cares],
            dtype=torch.bool,
        )
        dets = dets[dets[:, 3] - dets[:, 1] >= min_height]
        dont_care = [o.box for o in objs if o.type == "DontCare"]
        if dont_care and len(dets):
            inside = _covered(dets[:, :4], torch.tensor(dont_care, dtype=torch.float32))
            dets = dets[inside < iou_threshold]
        kept_dets.append(dets)
        truths.append(boxes[relevant])
        ignored.append(~counted[relevant])
    return rank_matches(kept_dets, truths, iou_threshold, ignored)


def kitti_level_ap(
    detections: list[torch.Tensor],
    objects: list[list[KittiObject]],
    kitti_type: str,
    level: str,
    iou_threshold: float = 0.7,
) -> float:
    """KITTI's 40-point AP of one class at one difficulty level (`kitti_level_matches`)."""
    ranked = kitti_level_matches(detections, objects, kitti_type, level, iou_threshold)
    return recall_points_ap(ranked.hits, int(ranked.truths.sum()))


def _covered(boxes: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """For each box, the largest fraction of its area inside one of `regions`."""
    lt = torch.max(boxes[:, None, :2], regions[None, :, :2])
    rb = torch.min(boxes[:, None, 2:], regions[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)  # (N, R)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(-1).clamp(min=1e-9)
    return (inter / area[:, None]).max(1).values


def class_summary(
    detections: list[torch.Tensor], data: DetectionSet, class_id: int, conf_threshold: float
) -> dict[str, float]:
    """`detection_summary` of one class, from detections of every class."""
    truths = [t[t[:, 0] == class_id, 1:].cpu() for t in data.targets]
    mine = [d[d[:, 5] == class_id] for d in detections]
    return detection_summary(mine, truths, conf_threshold)
