"""Frame-level bootstrap of the detector metrics, and the paired transfer - scratch comparison."""

import json

import numpy as np
import pytest
import torch

from kitti_pipeline.core.bootstrap import frame_resamples, seed_resamples
from kitti_pipeline.detect.compare import compare_detectors
from kitti_pipeline.detect.matching import matches_to_dict, rank_matches
from kitti_pipeline.detect.metrics import (
    coco_ap,
    detection_summary,
    resampled_average_precision,
    resampled_coco_ap,
    resampled_points_ap,
    resampled_thresholded,
)

from .reference_metrics import ap_loop, match_loop, points_ap_loop, thresholded_loop

RUNS = ("transfer", "scratch")


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
    # Every frame once among the draws: the metrics of the test set itself.
    draws = np.concatenate([draws, np.ones((1, 12), dtype=np.int64)])
    ap = resampled_average_precision(ranked, draws)
    ap40 = resampled_points_ap(rank_matches(detections, truths, 0.7), draws)
    thresholded = resampled_thresholded(ranked, draws, 0.4)
    for k, draw in enumerate(draws):
        scores, hits, n = match_loop(*drawn(detections, truths, draw), 0.5)
        assert ap[k] == pytest.approx(ap_loop(hits, n), abs=1e-12)
        _, strict, _ = match_loop(*drawn(detections, truths, draw), 0.7)
        assert ap40[k] == pytest.approx(points_ap_loop(strict, n), abs=1e-12)
        expected = thresholded_loop(scores, hits, n, 0.4)
        got = [thresholded[name][k] for name in ("precision", "recall", "F1")]
        assert got == pytest.approx(expected, abs=1e-12)


def test_resampled_coco_ap_is_that_of_the_repeated_frames_with_the_cap():
    """COCO's AP@[.5:.95] of each draw equals `coco_ap` (checked against pycocotools) on the
    repeated frames; one frame holds 130 detections, so its 100-detection cap matters."""
    detections, truths = random_frames(10, seed=4)
    g = torch.Generator().manual_seed(5)
    crowd = truths[3].repeat(44, 1)[:130] + torch.randn(130, 4, generator=g) * 4
    detections[3] = torch.cat([crowd, torch.rand(130, 1, generator=g), torch.zeros(130, 1)], 1)
    matches = rank_matches(detections, truths).capped()
    assert matches.hits.shape == (10, sum(min(len(d), 100) for d in detections))
    draws = frame_resamples(10, 20, seed=6)
    ap = resampled_coco_ap(matches, draws)
    for k, draw in enumerate(draws):
        assert ap[k] == pytest.approx(coco_ap(*drawn(detections, truths, draw)), abs=1e-12)
    once = np.ones((1, 10), dtype=np.int64)
    assert resampled_coco_ap(matches, once)[0] == coco_ap(detections, truths)


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
    for run, dets in (("transfer", better), ("scratch", detections)):
        write_matches(tmp_path / f"{run}-s0.json", stems, dets, truths)
    out = compare_detectors(tmp_path, RUNS, (0,), 0.25, 400)
    cell = out["transfer-scratch"]["AP50"]
    a, b = (rank_matches(d, truths, 0.5) for d in (better, detections))
    assert cell["difference"] == pytest.approx(
        ap_loop(*match_loop(better, truths, 0.5)[1:])
        - ap_loop(*match_loop(detections, truths, 0.5)[1:])
    )
    assert (
        cell["resolved"]
        and cell["low"] > 0
        and "kitti_AP40_moderate" not in out["transfer-scratch"]
    )
    draws = frame_resamples(40, 400)
    own = [np.quantile(resampled_average_precision(r, draws), (0.025, 0.975)) for r in (a, b)]
    assert own[0][0] < own[1][1]  # the runs' own intervals overlap

    own = {run: out["arms"][run]["best"]["AP50"] for run in ("transfer", "scratch")}
    assert own["transfer"]["low"] < own["scratch"]["high"]  # as the comparison reports them

    (tmp_path / "transfer-s0.json").write_text((tmp_path / "scratch-s0.json").read_text())
    same = compare_detectors(tmp_path, RUNS, (0,), 0.25, 100)["transfer-scratch"]
    assert same["F1"] == {"difference": 0.0, "low": 0.0, "high": 0.0, "resolved": False}
    other = json.loads((tmp_path / "scratch-s0.json").read_text())
    other["stems"][0] = "elsewhere"
    (tmp_path / "scratch-s0.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="hold other test frames"):
        compare_detectors(tmp_path, RUNS, (0,), 0.25, 10)


def write_matches(path, stems, detections, truths, last=None):
    """A matches file as `evaluate_detector` writes it: both checkpoints, no `label_2`."""

    def checkpoint(dets, epoch):
        return {
            "epoch": epoch,
            "AP50": matches_to_dict(rank_matches(dets, truths, 0.5)),
            "AP50_95": matches_to_dict(rank_matches(dets, truths).capped()),
            "AP40_iou70_all_truths": matches_to_dict(rank_matches(dets, truths, 0.7)),
            "kitti_AP40": None,
        }

    best = checkpoint(detections, 15)
    path.write_text(
        json.dumps(
            {
                "stems": stems,
                "class": "Car",
                "best": best,
                "last": best if last is None else checkpoint(last, 20),
            }
        )
    )


def test_with_seeds_every_draw_resamples_frames_and_each_runs_seeds(tmp_path):
    """Two seeds per run: a slow reference takes the same frame and seed draws, repeats the
    drawn frames, scores each drawn seed's detections on them and averages over the drawn
    seeds; every interval equals its quantiles, and every value is the mean over seeds."""
    frames, seeds, resamples = 12, (3, 8), 40
    base, truths = random_frames(frames, seed=0)
    stems = [f"{f:06d}" for f in range(frames)]
    runs = {}
    for k, key in enumerate((r, s) for r in ("transfer", "scratch") for s in seeds):
        g = torch.Generator().manual_seed(100 + k)
        # Each run and seed keeps a random part of the boxes and scores them its own way.
        runs[key] = [d[torch.rand(len(d), generator=g) < 0.8] for d in base]
        for d in runs[key]:
            d[:, 4] = torch.rand(len(d), generator=g)
        write_matches(tmp_path / f"{key[0]}-s{key[1]}.json", stems, runs[key], truths)
    out = compare_detectors(tmp_path, RUNS, seeds, 0.25, resamples)

    def scores(dets, gts):
        summary = detection_summary(dets, gts, 0.25)
        return {"AP50": summary["AP50"], "F1": summary["F1"], "AP50_95": coco_ap(dets, gts)}

    draws = frame_resamples(frames, resamples)
    picks = seed_resamples(("transfer", "scratch"), len(seeds), resamples)
    reference = {run: {m: [] for m in ("AP50", "F1", "AP50_95")} for run in ("transfer", "scratch")}
    for r, draw in enumerate(draws):
        for run in ("transfer", "scratch"):
            drawn_seeds = [
                scores(*drawn(runs[run, seeds[i]], truths, draw)) for i in picks[run][:, r]
            ]
            for metric, values in reference[run].items():
                values.append(np.mean([v[metric] for v in drawn_seeds]))
    for run in ("transfer", "scratch"):
        full = [scores(runs[run, s], truths) for s in seeds]
        for metric, values in reference[run].items():
            cell = out["arms"][run]["best"][metric]
            assert cell["value"] == pytest.approx(np.mean([f[metric] for f in full]), abs=1e-12)
            low, high = np.quantile(values, (0.025, 0.975))
            assert (cell["low"], cell["high"]) == pytest.approx((low, high), abs=1e-12), metric
    for metric in ("AP50", "F1", "AP50_95"):
        gap = np.subtract(reference["transfer"][metric], reference["scratch"][metric])
        cell = out["transfer-scratch"][metric]
        assert (cell["low"], cell["high"]) == pytest.approx(
            tuple(np.quantile(gap, (0.025, 0.975))), abs=1e-12
        ), metric
    assert out["seeds"] == [3, 8] and out["epochs"]["scratch"] == {
        "best": [15, 15],
        "last": [15, 15],
    }
