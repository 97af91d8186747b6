"""Frame-level bootstrap intervals and paired comparisons of classifier runs."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from kitti_pipeline.classify.compare import arm_intervals, arm_pairs, compare_arms
from kitti_pipeline.classify.metrics import (
    bootstrap_intervals,
    confusion_matrix,
    macro_scores,
    resampled_confusions,
    scores_from_confusion,
)
from kitti_pipeline.core.bootstrap import frame_resamples, percentile_interval
from kitti_pipeline.core.params import ARMS

from .reference_metrics import drawn_crops

CLASSES = ("Car", "Person", "Cyclist")


def correlated_frames(frames=20, crops=9):
    """Two classes; every crop of an even frame is right, every crop of an odd frame wrong."""
    names = [f"f{k:02d}" for k in range(frames) for _ in range(crops)]
    y_true = np.tile(np.arange(crops) % 2, frames)
    right = np.repeat(np.arange(frames) % 2 == 0, crops)
    return y_true, np.where(right, y_true, 1 - y_true), names


def test_the_frame_bootstrap_widens_the_interval_of_correlated_crops_as_worked_out():
    """Accuracy is the share of right frames: over 20 frames drawn with replacement, of which
    10 are right, it is Binomial(20, 1/2) / 20, whose 2.5% and 97.5% quantiles are 6/20 and
    14/20 (P(X <= 5) = 0.021, P(X <= 6) = 0.058). Treating the 180 crops as independent gives
    Binomial(180, 1/2) / 180 instead: 1/2 -+ 1.96 sqrt(1/4 / 180) = [0.427, 0.573], three
    (sqrt 9) times narrower."""
    y_true, y_pred, frames = correlated_frames()
    by_frame = bootstrap_intervals(y_true, y_pred, frames, 2, resamples=4000)
    by_crop = bootstrap_intervals(y_true, y_pred, list(range(180)), 2, resamples=4000)
    assert by_frame["accuracy"] == pytest.approx((0.30, 0.70))
    assert by_crop["accuracy"] == pytest.approx((0.427, 0.573), abs=0.008)
    width = by_frame["accuracy"][1] - by_frame["accuracy"][0]
    assert width / (by_crop["accuracy"][1] - by_crop["accuracy"][0]) == pytest.approx(3, rel=0.1)


def test_resampled_confusions_are_those_of_the_drawn_crops():
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    frames = [f"f{k}" for k in rng.integers(0, 12, 50)]
    draws = frame_resamples(len(set(frames)), 30, seed=4)
    assert draws.shape == (30, len(set(frames))) and (draws.sum(1) == len(set(frames))).all()
    cms = resampled_confusions(y_true, y_pred, frames, draws, 3)
    names = sorted(set(frames))
    for draw, cm in zip(draws, cms, strict=True):
        # The slow way: repeat each crop as often as its frame is drawn.
        repeats = np.array([draw[names.index(f)] for f in frames])
        idx = np.repeat(np.arange(50), repeats)
        assert (cm == confusion_matrix(y_true[idx], y_pred[idx], 3)).all()
        scores = macro_scores(cm[None])
        expected = scores_from_confusion(cm)
        for name in ("mCA", "mF1", "accuracy"):
            assert scores[name][0] == pytest.approx(expected[name])
        assert scores["mCA"][0] == pytest.approx(
            recall_score(
                y_true[idx], y_pred[idx], labels=[0, 1, 2], average="macro", zero_division=0
            )
        )
        assert scores["mF1"][0] == pytest.approx(
            f1_score(y_true[idx], y_pred[idx], labels=[0, 1, 2], average="macro", zero_division=0)
        )


def slow_difference_interval(a, b, frames, resamples, metric):
    """One arm against another, one seed: the percentile interval of the difference over the
    same frame draws, each draw's crops listed and scored with scikit-learn."""
    draws = frame_resamples(len(set(frames)), resamples)
    names = sorted(set(frames))
    score = {"mCA": recall_score, "mF1": f1_score}[metric]
    diffs = []
    for draw in draws:
        idx = np.repeat(np.arange(len(frames)), [draw[names.index(f)] for f in frames])
        values = [
            score(y[0][idx], y[1][idx], labels=[0, 1, 2], average="macro", zero_division=0)
            for y in (a, b)
        ]
        diffs.append(values[0] - values[1])
    return percentile_interval(np.array(diffs))


def runs_for(archs, seeds, make):
    return {
        (arch, regime, s): make(arch, regime, s) for arch in archs for regime in ARMS for s in seeds
    }


def test_a_paired_difference_is_the_slow_reference_and_resolves_what_unpaired_cannot():
    """Fine-tuning fixes 12 of scratch's errors, in 12 different frames, and changes nothing
    else: paired, the difference is positive in every draw; the runs' own intervals overlap."""
    rng = np.random.default_rng(0)
    frames = [f"f{k:02d}" for k in range(40) for _ in range(6)]
    y_true = rng.integers(0, 3, 240)
    scratch = np.where(rng.random(240) < 0.3, (y_true + 1) % 3, y_true)
    wrong = np.flatnonzero(scratch != y_true)
    first_per_frame = {frames[i]: i for i in wrong[::-1]}
    fixed = sorted(first_per_frame.values())[:12]
    finetune = scratch.copy()
    finetune[fixed] = y_true[fixed]

    def make(arch, regime, seed):
        return y_true, finetune if regime == "finetune" else scratch

    out = compare_arms(
        runs_for(("resnet18",), (0,), make), frames, ("resnet18",), (0,), CLASSES, 500
    )
    cell = out["resnet18"]["finetune-scratch"]
    for metric in ("mCA", "mF1"):
        expected = slow_difference_interval(
            (y_true, finetune), (y_true, scratch), frames, 500, metric
        )
        assert (cell[metric]["low"], cell[metric]["high"]) == pytest.approx(expected)
    assert cell["mCA"]["resolved"] and cell["mCA"]["low"] > 0
    assert out["resnet18"]["frozen-scratch"]["mCA"] == {
        "difference": 0.0,
        "low": 0.0,
        "high": 0.0,
        "resolved": False,
    }
    # Unpaired, the two runs' own intervals overlap: they alone could not tell.
    own = [bootstrap_intervals(y_true, p, frames, 3, 500)["mCA"] for p in (finetune, scratch)]
    assert own[0][0] < own[1][1]


def test_identical_seeds_give_the_one_seed_interval_and_seed_noise_widens_it():
    rng = np.random.default_rng(2)
    frames = [f"f{k:02d}" for k in range(30) for _ in range(5)]
    y_true = rng.integers(0, 3, 150)
    good, bad = (np.where(rng.random(150) < q, rng.integers(0, 3, 150), y_true) for q in (0.1, 0.5))
    archs = ("resnet18", "mobilenet_v2")

    def steady(arch, regime, seed):
        return y_true, good if regime == "finetune" else y_true

    def unsteady(arch, regime, seed):  # scratch is perfect under seed 0, poor under seed 1
        return y_true, good if regime == "finetune" else bad if seed else y_true

    one = compare_arms(runs_for(archs, (0,), steady), frames, archs, (0,), CLASSES, 300)
    same = compare_arms(runs_for(archs, (0, 1), steady), frames, archs, (0, 1), CLASSES, 300)
    assert one == same
    spread = compare_arms(runs_for(archs, (0, 1), unsteady), frames, archs, (0, 1), CLASSES, 300)
    cells = [c["resnet18"]["finetune-scratch"]["mCA"] for c in (one, spread)]
    assert cells[1]["high"] - cells[1]["low"] > 2 * (cells[0]["high"] - cells[0]["low"])


def test_the_comparisons_are_the_studys_questions():
    study = ("scratch", "frozen", "finetune", "frozen_random")
    pairs = arm_pairs(("resnet18", "mobilenet_v2"), study)
    assert [(g, a, b) for g, a, b in pairs][:4] == [
        ("resnet18", ("resnet18", "finetune"), ("resnet18", "scratch")),
        ("resnet18", ("resnet18", "frozen"), ("resnet18", "scratch")),
        ("resnet18", ("resnet18", "finetune"), ("resnet18", "frozen")),
        ("resnet18", ("resnet18", "frozen"), ("resnet18", "frozen_random")),
    ]
    # The architectures are compared on the regimes; the control is only the frozen arm's.
    assert pairs[-3:] == [
        ("resnet18-mobilenet_v2", ("resnet18", r), ("mobilenet_v2", r))
        for r in ("scratch", "frozen", "finetune")
    ]
    assert len(pairs) == 11


def test_lpft_is_compared_with_its_probe_and_with_fine_tuning():
    pairs = arm_pairs(("mobilenet_v2",), ("scratch", "frozen", "finetune", "lpft", "frozen_random"))
    assert [(a[1], b[1]) for _, a, b in pairs][-2:] == [("lpft", "frozen"), ("lpft", "finetune")]
    assert len(pairs) == 6
    # Without the frozen arm, LP-FT has no probe to be compared with.
    assert [(a[1], b[1]) for _, a, b in arm_pairs(("mobilenet_v2",), ("finetune", "lpft"))] == [
        ("lpft", "finetune")
    ]


def test_each_arms_interval_is_its_runs_own_and_per_class_accuracy_the_slow_way():
    """With one seed, an arm's interval over the comparisons' draws is the run's own
    (`bootstrap_intervals`, the same draws); a class's accuracy interval is the percentile of
    its recall on each draw's repeated frames, computed here one draw at a time."""
    rng = np.random.default_rng(4)
    frames = [f"f{k:02d}" for k in range(25) for _ in range(6)]
    y_true = rng.integers(0, 3, 150)
    y_pred = np.where(rng.random(150) < 0.3, rng.integers(0, 3, 150), y_true)
    runs = {("resnet18", r, 0): (y_true, y_pred) for r in ("scratch", "frozen", "finetune")}
    arms = arm_intervals(runs, frames, (0,), CLASSES, 200)
    cell = arms["resnet18"]["finetune"]
    own = bootstrap_intervals(y_true, y_pred, frames, 3, 200)
    for metric in ("mCA", "mF1"):
        assert (cell[metric]["low"], cell[metric]["high"]) == pytest.approx(own[metric])
    assert cell["mRecall"] == cell["mCA"]
    assert cell["acc_Person"]["value"] == pytest.approx(
        recall_score(y_true, y_pred, average=None)[1]
    )
    recalls = []
    for picks in drawn_crops(frames, 200):
        t, p = y_true[picks], y_pred[picks]
        recalls.append((p[t == 1] == 1).mean() if (t == 1).any() else 0.0)
    expected = percentile_interval(np.array(recalls))
    assert (cell["acc_Person"]["low"], cell["acc_Person"]["high"]) == pytest.approx(expected)
