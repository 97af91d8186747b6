"""Detection metrics: matching, precision/recall, AP (all-point, COCO-style, KITTI 40-point).

Detections of every test image are ranked by score. Within an image, each detection in turn
matches the unmatched ground truth it overlaps most, if that IoU reaches the threshold: a true
positive; otherwise a false positive. Precision and recall then follow down the ranking:

    AP (all-point)   sum over recall steps of (r_k - r_{k-1}) * max precision at recall >= r_k
                     (PASCAL VOC 2010 onwards);
    AP@[.5:.95]      the mean of all-point AP at IoU 0.50, 0.55, ..., 0.95 (COCO's summary);
    KITTI AP40       the mean, over recall 1/40, 2/40, ..., 1, of the max precision at recall >=
                     that point, at IoU 0.7 for cars.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou


def match(
    detections: list[torch.Tensor], truths: list[torch.Tensor], iou_threshold: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mark each detection true or false positive.

    Args:
        detections: Per image, (N, 5+) rows `x1, y1, x2, y2, score, ...`.
        truths: Per image, (M, 4) ground-truth boxes.
        iou_threshold: Minimum IoU for a match.

    Returns:
        Scores and true-positive flags of all detections, sorted by descending score, and the
        number of ground truths.
    """
    scores, hits = [], []
    for dets, gts in zip(detections, truths, strict=True):
        order = torch.argsort(dets[:, 4], descending=True, stable=True)
        dets = dets[order]
        taken = torch.zeros(len(gts), dtype=torch.bool)
        ious = box_iou(dets[:, :4], gts[:, :4]) if len(gts) else torch.zeros(len(dets), 0)
        for k in range(len(dets)):
            hit = False
            if len(gts):
                candidates = ious[k].masked_fill(taken, -1.0)
                best = int(candidates.argmax())
                if candidates[best] >= iou_threshold:
                    taken[best] = hit = True
            scores.append(float(dets[k, 4]))
            hits.append(hit)
    scores, hits = np.array(scores), np.array(hits, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    return scores[order], hits[order], sum(len(g) for g in truths)


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


def detection_summary(
    detections: list[torch.Tensor],
    truths: list[torch.Tensor],
    conf_threshold: float,
) -> dict[str, float]:
    """Table 6's figures and the COCO- and KITTI-style APs for one model on a test set.

    Precision, recall and F1 count detections scoring at least `conf_threshold` at IoU 0.5.
    """
    scores, hits, n = match(detections, truths, 0.5)
    kept = hits[scores >= conf_threshold]
    tp = int(kept.sum())
    precision = tp / len(kept) if len(kept) else 0.0
    recall = tp / n if n else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    coco = [
        average_precision(match(detections, truths, t)[1], n) for t in np.arange(0.5, 0.96, 0.05)
    ]
    return {
        "precision": precision,
        "recall": recall,
        "AP50": average_precision(hits, n),
        "F1": f1,
        "AP50_95": float(np.mean(coco)),
        "kitti_AP40_iou70": recall_points_ap(match(detections, truths, 0.7)[1], n),
        "ground_truths": n,
    }
