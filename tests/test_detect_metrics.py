import numpy as np
import pytest
import torch

from kitti_pipeline.detect.matching import SUMMARY_IOUS, RankedMatches, rank_matches
from kitti_pipeline.detect.metrics import (
    average_precision,
    detection_summary,
    interpolated_pr,
    recall_points_ap,
)

from .reference_metrics import ap_loop, match_loop


def ranked(hits, truths):
    """Ranked matches of one frame holding `truths` ground truths, best first."""
    hits = np.asarray(hits, dtype=bool)
    scores = np.linspace(1, 0.5, len(hits))
    return RankedMatches(np.zeros(len(hits), dtype=np.int64), scores, hits, np.array([truths]))


def test_ap_by_hand():
    # Ranked: TP, FP, TP, FP, TP with 4 ground truths.
    # Precision 1, 1/2, 2/3, 2/4, 3/5; recall 1/4, 1/4, 2/4, 2/4, 3/4.
    # Envelope at the recall steps: 1 (r=1/4), 2/3 (r=2/4), 3/5 (r=3/4).
    hits = np.array([1, 0, 1, 0, 1], dtype=bool)
    assert average_precision(ranked(hits, 4)) == pytest.approx(
        0.25 * 1 + 0.25 * 2 / 3 + 0.25 * 3 / 5
    )


@pytest.mark.parametrize("seed", range(5))
def test_ap_matches_a_slow_reference_loop(seed):
    rng = np.random.default_rng(seed)
    hits = rng.random(60) < 0.6
    n = int(hits.sum()) + int(rng.integers(0, 10))
    assert average_precision(ranked(hits, n)) == pytest.approx(ap_loop(hits, n))


def test_kitti_40_point_ap_by_hand():
    # One TP of one ground truth: precision 1 at recall 1 -> every recall point scores 1.
    assert recall_points_ap(ranked([True], 1)) == 1.0
    # Two ground truths, one found with precision 1: recall points 1/40..20/40 score 1.
    assert recall_points_ap(ranked([True, False], 2)) == pytest.approx(20 / 40)


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
    matches = rank_matches(dets, gts, 0.5)
    assert matches.truths.tolist() == [2]
    assert matches.scores.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert matches.hits.tolist() == [True, False, True, False]
    assert rank_matches(dets, gts, 0.7).hits.tolist() == [True, False, False, False]
    both = rank_matches(dets, gts, np.array([0.5, 0.7])).hits
    assert both.tolist() == [[True, False, True, False], [True, False, False, False]]


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
    # The boxes are exact, so every IoU threshold gives the same ranking; COCO reads its
    # envelope (1, 2/3, 2/3 at recall 1/2, 1/2, 1) at 101 points: 1 at recall 0 to 0.50
    # (51 points), 2/3 above (50 points).
    assert s["AP50_95"] == pytest.approx((51 + 50 * 2 / 3) / 101)


def crowded_frames(seed, frames=6):
    """Frames of cars and detections around them: a pair of overlapping cars per frame, near-
    ties for one truth, duplicates, misses and equal scores, so the greedy order matters."""
    rng = np.random.default_rng(seed)
    detections, truths = [], []
    for _ in range(frames):
        count = int(rng.integers(0, 8))
        xy = rng.uniform(0, 300, (count, 2))
        gts = np.concatenate([xy, xy + rng.uniform(10, 80, (count, 2))], 1)
        if count:  # a car half behind another: a detection can fit both
            gts = np.r_[gts, gts[:1] + [4, 0, 4, 0]]
            count += 1
        dets = []
        for box in gts:
            for _ in range(int(rng.integers(0, 4))):
                dets.append(box + rng.normal(0, 6, 4))
        dets += list(np.concatenate([xy2 := rng.uniform(0, 300, (3, 2)), xy2 + 30], 1))
        dets = np.array(dets).reshape(-1, 4)
        dets[:, 2:] = np.maximum(dets[:, 2:], dets[:, :2] + 1)
        scores = np.round(rng.random(len(dets)), 1)  # ties in score, broken by list order
        detections.append(torch.tensor(np.c_[dets, scores], dtype=torch.float32))
        truths.append(torch.tensor(gts, dtype=torch.float32).reshape(-1, 4))
    return detections, truths


@pytest.mark.parametrize("seed", range(6))
def test_one_pass_over_every_threshold_equals_a_loop_per_threshold(seed):
    detections, truths = crowded_frames(seed)
    matches = rank_matches(detections, truths, SUMMARY_IOUS)
    assert matches.hits.shape == (len(SUMMARY_IOUS), len(matches.scores)) and matches.hits[0].any()
    for row, threshold in zip(matches.hits, SUMMARY_IOUS, strict=True):
        ref_scores, ref_hits, ref_n = match_loop(detections, truths, threshold)
        np.testing.assert_array_equal(matches.scores, ref_scores)
        np.testing.assert_array_equal(row, ref_hits)
        assert matches.truths.sum() == ref_n


def test_interpolated_pr_by_hand():
    # TP, FP, TP with 4 truths: precision 1, 1/2, 2/3 at recall 1/4, 1/4, 1/2.
    curve = {round(p["recall"], 2): p["precision"] for p in interpolated_pr(ranked([1, 0, 1], 4))}
    assert len(curve) == 101
    assert curve[0.0] == curve[0.25] == 1.0
    assert curve[0.26] == curve[0.5] == pytest.approx(2 / 3)
    assert curve[0.51] == curve[1.0] == 0.0
