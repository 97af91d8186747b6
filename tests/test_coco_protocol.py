"""AP@[.5:.95] as COCO computes it, checked against pycocotools' COCOeval on generated cases."""

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kitti_pipeline.detect.metrics import coco_ap, detection_summary


def generated_case(seed, frames=8):
    """Frames of cars with detections near them, false positives, frames without cars, and a
    frame with more than 100 detections (COCO keeps each image's 100 best)."""
    rng = np.random.default_rng(seed)
    detections, truths = [], []
    for frame in range(frames):
        count = 0 if frame == 1 else int(rng.integers(1, 9))
        xy = rng.uniform(0, 1000, (count, 2))
        gts = np.c_[xy, xy + rng.uniform(15, 150, (count, 2))]
        near = np.repeat(gts, 3, 0) + rng.normal(0, 7, (3 * count, 4))
        far_count = 140 if frame == 2 else int(rng.integers(0, 12))
        far = rng.uniform(0, 1000, (far_count, 2))
        dets = np.r_[near, np.c_[far, far + rng.uniform(10, 120, (far_count, 2))]]
        dets[:, 2:] = np.maximum(dets[:, 2:], dets[:, :2] + 1)
        scores = rng.random(len(dets))
        detections.append(torch.tensor(np.c_[dets, scores], dtype=torch.float64))
        truths.append(torch.tensor(gts, dtype=torch.float64).reshape(-1, 4))
    return detections, truths


def pycocotools_ap(detections, truths):
    """COCOeval's bbox AP@[.5:.95] (area all, maxDets 100) for one category."""

    def xywh(box):
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        return [x1, y1, x2 - x1, y2 - y1]

    images = [{"id": i + 1} for i in range(len(truths))]
    annotations = [
        {
            "id": len(images) * 1000 + k + 1 + i * 100,  # ids from 1: COCOeval reads 0 as none
            "image_id": i + 1,
            "category_id": 1,
            "bbox": xywh(box),
            "area": xywh(box)[2] * xywh(box)[3],
            "iscrowd": 0,
        }
        for i, gts in enumerate(truths)
        for k, box in enumerate(gts)
    ]
    results = [
        {"image_id": i + 1, "category_id": 1, "bbox": xywh(d), "score": float(d[4])}
        for i, dets in enumerate(detections)
        for d in dets
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1}]}
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats[0]


@pytest.mark.parametrize("seed", range(6))
def test_ap_50_95_is_cocoeval_s(seed):
    detections, truths = generated_case(seed)
    assert len(detections[2]) > 100  # the 100-detection cap matters here
    ours = coco_ap(detections, truths)
    assert 0.05 < ours < 0.95
    assert ours == pytest.approx(pycocotools_ap(detections, truths), abs=1e-9)
    assert detection_summary(detections, truths, 0.25)["AP50_95"] == ours


def test_without_cocos_cap_of_100_per_image_the_figure_is_not_cocoeval_s():
    detections, truths = generated_case(0)
    reference = pycocotools_ap(detections, truths)
    assert coco_ap(detections, truths, max_detections=1000) != pytest.approx(reference, abs=1e-6)
