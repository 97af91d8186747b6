"""Slow references that the tests hold the fast code equal to.

`match_loop` is the detection matching this project used before `greedy_matches`: one Python
pass per IoU threshold and a torch reduction per detection, also the baseline of
bench/detector_matching_speed.py. `drawn_crops` spells out the frame bootstrap crop by crop."""

import numpy as np
import torch
from torchvision.ops import box_iou

from kitti_pipeline.core.bootstrap import frame_resamples


def drawn_crops(frames: list[str], resamples: int) -> list[list[int]]:
    """The crops of each draw of `core.bootstrap.frame_resamples` over the sorted distinct
    `frames` (the frame of each crop): every crop of a frame, once for each time it is drawn."""
    names = sorted(set(frames))
    return [
        [
            i
            for name, count in zip(names, draw, strict=True)
            for _ in range(count)
            for i in range(len(frames))
            if frames[i] == name
        ]
        for draw in frame_resamples(len(names), resamples)
    ]


def match_loop(detections, truths, iou_threshold, ignored=None):
    """Ranked scores, true-positive flags and the counted-truth count at one threshold."""
    if ignored is None:
        ignored = [torch.zeros(len(g), dtype=torch.bool) for g in truths]
    scores, hits = [], []
    for dets, gts, skip in zip(detections, truths, ignored, strict=True):
        order = torch.argsort(dets[:, 4], descending=True, stable=True)
        dets = dets[order]
        taken = torch.zeros(len(gts), dtype=torch.bool)
        ious = box_iou(dets[:, :4], gts[:, :4]) if len(gts) else torch.zeros(len(dets), 0)
        for k in range(len(dets)):
            hit = dropped = False
            for pool in (~skip, skip):  # counted truths first
                candidates = ious[k].masked_fill(taken | ~pool, -1.0)
                if len(gts) and candidates.max() >= iou_threshold:
                    best = int(candidates.argmax())
                    taken[best] = True
                    dropped = bool(skip[best])
                    hit = not dropped
                    break
            if not dropped:
                scores.append(float(dets[k, 4]))
                hits.append(hit)
    scores = np.array(scores)
    order = np.argsort(-scores, kind="stable")
    counted = sum(int((~s).sum()) for s in ignored)
    return scores[order], np.array(hits, dtype=bool)[order], counted
