import numpy as np
import pytest
import torch

from kitti_pipeline.detection_metrics import (
    average_precision,
    detection_summary,
    match,
    recall_points_ap,
)


def slow_ap(hits, n):
    """AP by its definition: for each detection that raises recall, the best precision at that
    recall or beyond, times the recall gained."""
    ap, last_recall = 0.0, 0.0
    for k in range(len(hits)):
        if not hits[k]:
            continue
        recall = sum(hits[: k + 1]) / n
        best = max(sum(hits[: m + 1]) / (m + 1) for m in range(k, len(hits)))
        ap += (recall - last_recall) * best
        last_recall = recall
    return ap


def test_ap_by_hand():
    # Ranked: TP, FP, TP, FP, TP with 4 ground truths.
    # Precision 1, 1/2, 2/3, 2/4, 3/5; recall 1/4, 1/4, 2/4, 2/4, 3/4.
    # Envelope at the recall steps: 1 (r=1/4), 2/3 (r=2/4), 3/5 (r=3/4).
    hits = np.array([1, 0, 1, 0, 1], dtype=bool)
    assert average_precision(hits, 4) == pytest.approx(0.25 * 1 + 0.25 * 2 / 3 + 0.25 * 3 / 5)


@pytest.mark.parametrize("seed", range(5))
def test_ap_matches_a_slow_reference_loop(seed):
    rng = np.random.default_rng(seed)
    hits = rng.random(60) < 0.6
    n = int(hits.sum()) + int(rng.integers(0, 10))
    assert average_precision(hits, n) == pytest.approx(slow_ap(list(hits), n))


def test_kitti_40_point_ap_by_hand():
    # One TP of one ground truth: precision 1 at recall 1 -> every recall point scores 1.
    assert recall_points_ap(np.array([True]), 1) == 1.0
    # Two ground truths, one found with precision 1: recall points 1/40..20/40 score 1.
    assert recall_points_ap(np.array([True, False]), 2) == pytest.approx(20 / 40)


def test_matching_takes_each_ground_truth_once_and_needs_the_iou():
    gts = [torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])]
    dets = [
        torch.tensor(
            [
                [0.0, 0, 10, 10, 0.9],  # TP for the first
                [1.0, 1, 10, 10, 0.8],  # same object again: FP
                [20.0, 20, 30, 26, 0.7],  # IoU 0.6 with the second: TP at 0.5, FP at 0.7
                [50.0, 50, 60, 60, 0.6],  # nothing there: FP
            ]
        )
    ]
    scores, hits, n = match(dets, gts, 0.5)
    assert n == 2 and scores.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert hits.tolist() == [True, False, True, False]
    assert match(dets, gts, 0.7)[1].tolist() == [True, False, False, False]


def test_summary_by_hand():
    gts = [torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[0.0, 0, 10, 10]])]
    dets = [
        torch.tensor([[0.0, 0, 10, 10, 0.9, 0]]),
        torch.tensor([[50.0, 50, 60, 60, 0.8, 0], [0.0, 0, 10, 10, 0.3, 0]]),
    ]
    s = detection_summary(dets, gts, conf_threshold=0.5)
    # At conf 0.5: detections 0.9 (TP) and 0.8 (FP): precision 1/2, recall 1/2, F1 1/2.
    assert (s["precision"], s["recall"], s["F1"]) == (0.5, 0.5, 0.5)
    # Ranked TP, FP, TP over 2 truths: AP = 0.5 * 1 + 0.5 * 2/3.
    assert s["AP50"] == pytest.approx(0.5 + 1 / 3)
    # The boxes are exact, so every IoU threshold gives the same AP.
    assert s["AP50_95"] == pytest.approx(s["AP50"])
