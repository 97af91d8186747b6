"""Frame-level bootstrap of the detector metrics, and the paired transfer - scratch comparison."""

import json

import numpy as np
import pytest
import torch

from kitti_pipeline.core.bootstrap import frame_resamples
from kitti_pipeline.detect.compare import compare_detectors
from kitti_pipeline.detect.metrics import (
    average_precision,
    match,
    matches_to_dict,
    rank_matches,
    resampled_average_precision,
    resampled_f1,
    resampled_thresholded,
    summary_f1,
)


def random_frames(count, seed):
    """Detections and ground truths of `count` frames: some boxes near a truth, some not."""
    g = torch.Generator().manual_seed(seed)
    detections, truths = [], []
    for frame in range(count):
        n = frame % 4  # some frames hold no car
        gts = torch.rand(n, 2, generator=g) * 300
        gts = torch.cat([gts, gts + 40], 1)
        near = gts + torch.randn(n, 4, generator=g) * 8
        far = torch.rand(3, 2, generator=g) * 300
        boxes = torch.cat([near, torch.cat([far, far + 30], 1)])
        scores = torch.rand(len(boxes), 1, generator=g)
        detections.append(torch.cat([boxes, scores, torch.zeros(len(boxes), 1)], 1))
        truths.append(gts)
    return detections, truths


def drawn(detections, truths, draw):
    """The test set of one draw, the slow way: each frame repeated as often as it is drawn."""
    picks = [f for f, times in enumerate(draw) for _ in range(times)]
    return [detections[f] for f in picks], [truths[f] for f in picks]


def test_resampled_metrics_are_those_of_the_repeated_frames():
    detections, truths = random_frames(12, seed=0)
    ranked = rank_matches(detections, truths, 0.5)
    draws = frame_resamples(12, 25, seed=3)
    ap = resampled_average_precision(ranked, draws)
    thresholded = resampled_thresholded(ranked, draws, 0.4)
    f1 = resampled_f1(ranked, draws, 0.4)
    for k, draw in enumerate(draws):
        scores, hits, n = match(*drawn(detections, truths, draw), 0.5)
        assert ap[k] == pytest.approx(average_precision(hits, n), abs=1e-12)
        kept = hits[scores >= 0.4]
        precision = kept.sum() / len(kept) if len(kept) else 0
        recall = kept.sum() / n if n else 0
        expected = 2 * precision * recall / (precision + recall) if precision + recall else 0
        assert f1[k] == pytest.approx(expected, abs=1e-12)
        assert thresholded["precision"][k] == pytest.approx(precision, abs=1e-12)
        assert thresholded["recall"][k] == pytest.approx(recall, abs=1e-12)
    # Every frame once: the metrics of the test set itself.
    once = np.ones((1, 12), dtype=np.int64)
    assert resampled_average_precision(ranked, once)[0] == pytest.approx(
        average_precision(ranked.hits, int(ranked.truths.sum()))
    )
    assert resampled_f1(ranked, once, 0.4)[0] == pytest.approx(summary_f1(ranked, 0.4))


def test_a_paired_comparison_resolves_a_gain_that_the_runs_own_intervals_do_not(tmp_path):
    """The transfer run finds what scratch finds, and one more car, which scratch misses, in 10
    of the 40 frames: a gain in every draw, while each run's interval spans the frames that are
    hard for both."""
    g = torch.Generator().manual_seed(1)
    detections, better, truths = [], [], []
    for frame in range(40):
        gts = torch.rand(3, 2, generator=g) * 300
        gts = torch.cat([gts, gts + 40], 1)
        far = torch.rand(2, 2, generator=g) * 300
        found = torch.cat([gts[1:] + 1, torch.cat([far, far + 30], 1)])  # misses the first car
        scores = torch.rand(len(found), 1, generator=g)
        dets = torch.cat([found, scores, torch.zeros(len(found), 1)], 1)
        detections.append(dets)
        extra = torch.cat([gts[:1], torch.tensor([[0.3, 0.0]])], 1)
        better.append(torch.cat([dets, extra]) if frame % 4 == 0 else dets)
        truths.append(gts)
    stems = [f"{k:06d}" for k in range(40)]
    paths = {}
    for run, dets in (("transfer", better), ("scratch", detections)):
        ranked = rank_matches(dets, truths, 0.5)
        paths[run] = tmp_path / f"{run}.json"
        paths[run].write_text(
            json.dumps(
                {
                    "stems": stems,
                    "epoch": 20,
                    "class": "Car",
                    "AP50": matches_to_dict(ranked),
                    "kitti_AP40_moderate": None,
                }
            )
        )
    out = compare_detectors(paths["transfer"], paths["scratch"], 0.25, 400)
    cell = out["transfer-scratch"]["AP50"]
    a, b = (rank_matches(d, truths, 0.5) for d in (better, detections))
    assert cell["difference"] == pytest.approx(
        average_precision(a.hits, int(a.truths.sum()))
        - average_precision(b.hits, int(b.truths.sum()))
    )
    assert (
        cell["resolved"]
        and cell["low"] > 0
        and "kitti_AP40_moderate" not in out["transfer-scratch"]
    )
    draws = frame_resamples(40, 400)
    own = [np.quantile(resampled_average_precision(r, draws), (0.025, 0.975)) for r in (a, b)]
    assert own[0][0] < own[1][1]  # the runs' own intervals overlap

    same = compare_detectors(paths["scratch"], paths["scratch"], 0.25, 100)["transfer-scratch"]
    assert same["F1"] == {"difference": 0.0, "low": 0.0, "high": 0.0, "resolved": False}
    other = json.loads(paths["scratch"].read_text())
    other["stems"][0] = "elsewhere"
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="hold other test frames"):
        compare_detectors(paths["transfer"], tmp_path / "other.json", 0.25, 10)
