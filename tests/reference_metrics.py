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


def ap_loop(hits, n):
    """All-point AP by its definition: for each detection that raises recall, the best
    precision at that recall or beyond, times the recall gained."""
    hits = [bool(h) for h in hits]
    ap, last_recall = 0.0, 0.0
    for k in range(len(hits)):
        if not hits[k]:
            continue
        recall = sum(hits[: k + 1]) / n
        best = max(sum(hits[: m + 1]) / (m + 1) for m in range(k, len(hits)))
        ap += (recall - last_recall) * best
        last_recall = recall
    return ap


def points_ap_loop(hits, n, points=40):
    """AP at recall 1/points, ..., 1: at each, the best precision of any rank reaching it."""
    hits = [bool(h) for h in hits]
    if not n:
        return 0.0
    curve = [(sum(hits[: m + 1]) / n, sum(hits[: m + 1]) / (m + 1)) for m in range(len(hits))]
    total = 0.0
    for level in range(1, points + 1):
        reached = [p for r, p in curve if r >= level / points - 1e-12]
        total += max(reached, default=0.0)
    return total / points


def thresholded_loop(scores, hits, n, conf_threshold):
    """Precision, recall and F1 of the ranked detections scoring at least `conf_threshold`."""
    kept = [bool(h) for s, h in zip(scores, hits, strict=True) if s >= conf_threshold]
    precision = sum(kept) / len(kept) if kept else 0.0
    recall = sum(kept) / n if n else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def reference_test_figures(model_file, frames, stems, nms_iou, conf_threshold):
    """A checkpoint's Car figures on the test frames, worked out apart from `evaluate_detector`:
    its detections (the project's network and NMS), cars from the label files by hand, matched,
    ranked and scored by the loops above, AP@[.5:.95] by pycocotools."""
    from PIL import Image

    from kitti_pipeline.detect.model_files import load_detector
    from kitti_pipeline.detect.predict import detect_frames, read_image

    from .test_coco_protocol import pycocotools_ap

    model, info = load_detector(model_file)
    detections, truths = [], []
    for stem in stems:
        image_path = next((frames / "images").glob(f"{stem}.*"))
        width, height = Image.open(image_path).size
        cars = []
        for line in (frames / "labels" / f"{stem}.txt").read_text().splitlines():
            fields = line.split()
            if fields and fields[0] == "0":  # Car
                cx, cy, w, h = (float(v) for v in fields[1:5])
                x1, y1 = (cx - w / 2) * width, (cy - h / 2) * height
                x2, y2 = (cx + w / 2) * width, (cy + h / 2) * height
                cars.append([max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)])
        truths.append(torch.tensor(cars, dtype=torch.float32).reshape(-1, 4))
        size, fill = info["img_size"], info["letterbox_fill"]
        found = detect_frames(model, [read_image(image_path)], size, 0.001, nms_iou, "cpu", fill)
        detections.append(found[0][found[0][:, 5] == 0])
    scores, hits, n = match_loop(detections, truths, 0.5)
    precision, recall, f1 = thresholded_loop(scores, hits, n, conf_threshold)
    return {
        "precision": precision,
        "recall": recall,
        "F1": f1,
        "AP50": ap_loop(hits, n),
        "AP50_95": pycocotools_ap(detections, truths),
        "ground_truths": n,
    }
