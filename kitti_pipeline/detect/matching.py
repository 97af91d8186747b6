"""Matching a test set's detections to its ground truths, once for every IoU threshold.

Detections of every test image are ranked by score. Within an image, each detection in turn
matches the unmatched ground truth it overlaps most, if that IoU reaches the threshold: a true
positive; otherwise a false positive. `rank_matches` does this at COCO's ten thresholds in one
pass per frame; every figure of `detect.metrics` follows from the result.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torchvision.ops import box_iou

# IoU 0.50, 0.55, ..., 0.95: COCO's thresholds, 0.5 first and 0.7 among them.
SUMMARY_IOUS = np.round(np.arange(0.5, 0.96, 0.05), 2)
# COCO's 101 recall points, as pycocotools' COCOeval spaces them, and its per-image cap.
COCO_RECALLS = np.linspace(0.0, 1.0, int(np.round(1.0 / 0.01)) + 1, endpoint=True)
COCO_MAX_DETECTIONS = 100


@dataclass(frozen=True)
class RankedMatches:
    """A test set's detections after matching, ranked by score, each with the frame it is in.

    Every detection metric follows from these alone, and a frame-level bootstrap draw only
    reweights them: matching happens within a frame, so a frame drawn twice brings its matches
    twice.
    """

    frames: np.ndarray  # (D,) the frame of each detection
    scores: np.ndarray  # (D,) descending
    hits: np.ndarray  # (D,) true positives at one IoU threshold, or (T, D) at several
    truths: np.ndarray  # (F,) ground truths of each frame

    def at(self, iou: float) -> RankedMatches:
        """The matches at one of the thresholds they were ranked at (COCO's by default)."""
        return replace(self, hits=self.hits[SUMMARY_IOUS.tolist().index(iou)])

    def capped(self, per_frame: int = COCO_MAX_DETECTIONS) -> RankedMatches:
        """Each frame's `per_frame` best only. Matching goes down a frame's ranking, so the
        detections kept match as they would without the rest."""
        kept = frame_ranks(self.frames) < per_frame
        return RankedMatches(
            self.frames[kept], self.scores[kept], self.hits[..., kept], self.truths
        )


def frame_ranks(frames: np.ndarray) -> np.ndarray:
    """The place of each ranked detection within its own frame's ranking (0: its best)."""
    order = np.argsort(frames, kind="stable")  # grouped by frame, ranking kept within each
    grouped = frames[order]
    ranks = np.empty(len(frames), dtype=np.int64)
    ranks[order] = np.arange(len(frames)) - np.searchsorted(grouped, grouped, side="left")
    return ranks


def rank_matches(
    detections: list[torch.Tensor],
    truths: list[torch.Tensor],
    iou_thresholds: float | np.ndarray = SUMMARY_IOUS,
) -> RankedMatches:
    """Mark each detection true or false positive at each threshold, in one pass per frame.

    Args:
        detections: Per image, (N, 5+) rows `x1, y1, x2, y2, score, ...`.
        truths: Per image, (M, 4) ground-truth boxes.
        iou_thresholds: One minimum IoU for a match, or several (T,).

    Returns:
        The detections ranked by descending score (stable), their frames, true-positive flags
        ((D,) for one threshold, (T, D) for several), and each frame's ground-truth count.
    """
    thresholds = np.atleast_1d(np.asarray(iou_thresholds, dtype=float))
    frames, scores, hits = [], [], []
    for frame, (dets, gts) in enumerate(zip(detections, truths, strict=True)):
        dets = dets[torch.argsort(dets[:, 4], descending=True, stable=True)].cpu()
        gts = gts.cpu()
        ious = box_iou(dets[:, :4], gts[:, :4]) if len(gts) else torch.zeros(len(dets), 0)
        frames += [frame] * len(dets)
        scores.append(dets[:, 4].numpy().astype(float))
        hits.append(greedy_matches(ious.numpy(), thresholds))
    scores = np.concatenate(scores) if scores else np.zeros(0)
    hits = np.concatenate(hits, 1) if hits else np.zeros((len(thresholds), 0), dtype=bool)
    order = np.argsort(-scores, kind="stable")
    return RankedMatches(
        frames=np.array(frames, dtype=np.int64)[order],
        scores=scores[order],
        hits=hits[:, order] if np.ndim(iou_thresholds) else hits[0, order],
        truths=np.array([len(g) for g in truths], dtype=np.int64),
    )


def greedy_matches(ious: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Greedy matching of one frame's ranked detections at every threshold in one pass.

    Each detection in turn takes the untaken truth it overlaps most, if that IoU reaches the
    threshold (a true positive); else it is a false positive. A tie goes to the truth listed
    first.

    Args:
        ious: (D, G) IoU of the detections, best first, with the truths.
        thresholds: (T,) IoU thresholds.

    Returns:
        (T, D) whether each detection is a true positive at each threshold.
    """
    # In float32 as the IoUs are: a threshold compares as torch compares a float32 tensor.
    thresholds = np.asarray(thresholds, dtype=np.float32)
    ious = np.asarray(ious, dtype=np.float32)
    hit = np.zeros((len(thresholds), len(ious)), dtype=bool)
    if ious.shape[1] == 0:
        return hit
    taken = np.zeros((len(thresholds), ious.shape[1]), dtype=bool)
    rows = np.arange(len(thresholds))
    lowest = thresholds.min()
    for k in range(len(ious)):
        if ious[k].max() < lowest:  # overlaps nothing enough at any threshold
            continue
        candidates = np.where(taken, np.float32(-1), ious[k])  # (T, G)
        best = candidates.argmax(1)
        found = candidates[rows, best] >= thresholds
        taken[rows[found], best[found]] = True
        hit[found, k] = True
    return hit


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
