"""`kitti-diff`: every figure's B - A and its interval equal a slow reference that repeats the
drawn frames and averages the drawn seeds, paired and unpaired."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, recall_score

from kitti_pipeline.core.params import DETECTOR_RUNS
from kitti_pipeline.detect.matching import matches_to_dict, rank_matches
from kitti_pipeline.experiments.diff import Side, diff_sides, markdown

from .reference_metrics import thresholded_loop
from .test_detect_bootstrap import random_frames

CLASSES = ("Car", "Person", "Cyclist")
RESAMPLES = 60


def frame_draws(count, resamples, seed):
    """The bootstrap's draws, spelt out: `count` frames with replacement, `resamples` times."""
    return np.random.default_rng(seed).multinomial(count, np.full(count, 1 / count), resamples)


def classifier_figures(y_true, y_pred):
    recall = recall_score(y_true, y_pred, labels=[0, 1, 2], average=None, zero_division=0)
    f1 = f1_score(y_true, y_pred, labels=[0, 1, 2], average=None, zero_division=0)
    out = {"mCA": recall.mean(), "mF1": f1.mean()}
    out.update({f"acc_{c}": recall[k] for k, c in enumerate(CLASSES)})
    return out


def envelope_ap(hits, n, levels=None):
    """AP of ranked hits from the precision envelope (the best precision at each rank or
    below it): all-point (the sum over hits of recall gained times the envelope), or read at
    recall `levels` as COCO reads it (0 past the last recall reached)."""
    hits = np.asarray(hits, dtype=float)
    if not len(hits) or not n:
        return 0.0
    tp = np.cumsum(hits)
    recall, precision = tp / n, tp / np.arange(1, len(hits) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    if levels is None:
        return float(np.sum(hits / n * envelope))
    reached = np.searchsorted(recall, levels, side="left")
    return float(np.mean([envelope[k] if k < len(hits) else 0.0 for k in reached]))


COCO_RECALLS = np.linspace(0, 1, 101)


def detector_figures(best, draw, conf):
    """AP50, F1 and AP50_95 of one draw: each frame's matches repeated as often as drawn."""
    figures = {}
    for key in ("AP50", "AP50_95"):
        data = best[key]
        frames = np.array(data["frames"])
        hits = np.array(data["hits"], dtype=bool)
        picks = [
            i for f, c in enumerate(draw) for _ in range(c) for i in np.flatnonzero(frames == f)
        ]
        scores = np.array(data["scores"])[picks]
        order = np.argsort(-scores, kind="stable")
        n = sum(c * t for c, t in zip(draw, data["truths"], strict=True))
        if key == "AP50":
            ranked = hits[picks][order]
            figures["AP50"] = envelope_ap(ranked, n)
            figures["F1"] = thresholded_loop(scores[order], ranked, n, conf)[2]
        else:
            ranked = hits[:, picks][:, order]
            figures["AP50_95"] = np.mean([envelope_ap(h, n, COCO_RECALLS) for h in ranked])
    return figures


def run_figures(study, seeds, frames, names, conf, seed, draw):
    """One seed's figures on the drawn frames, each repeated as often as it is drawn."""
    if study == "detector":
        return detector_figures(seeds[seed], draw, conf)
    y_true, y_pred = seeds[seed]
    crops = [
        i
        for name, count in zip(names, draw, strict=True)
        for _ in range(count)
        for i in range(len(frames))
        if frames[i] == name
    ]
    return classifier_figures(y_true[crops], y_pred[crops])


def reference(a: Side, b: Side, resamples: int) -> dict:
    """(run, figure) -> (a, b, low, high), the slow way."""
    out = {}
    for study in ("classifier", "detector"):
        runs_a, runs_b = getattr(a, study), getattr(b, study)
        frames = (
            [a.crop_frames, b.crop_frames]
            if study == "classifier"
            else [a.detector_frames, b.detector_frames]
        )
        names = [sorted(set(f)) for f in frames]
        paired = names[0] == names[1]
        draws = [frame_draws(len(names[0]), resamples, 0)]
        draws.append(draws[0] if paired else frame_draws(len(names[1]), resamples, 1))
        rng = np.random.default_rng(1)
        runs = sorted(r for r in runs_a if r in runs_b)
        if study == "detector":  # in the table's order, which draws the seed picks
            runs = [r for r in DETECTOR_RUNS if r in runs]
        for run in runs:
            seeds = [sorted(runs_a[run]), sorted(runs_b[run])]
            picks = [rng.integers(0, len(seeds[0]), (len(seeds[0]), resamples))]
            same = seeds[0] == seeds[1]
            picks.append(
                picks[0] if same else rng.integers(0, len(seeds[1]), (len(seeds[1]), resamples))
            )
            per_side = []
            for side, runs_of, fr, nm, dr, pk, sd in zip(
                (a, b), (runs_a, runs_b), frames, names, draws, picks, seeds, strict=True
            ):
                args = (study, runs_of[run], fr, nm, side.conf_threshold)
                full = [run_figures(*args, s, np.ones(len(nm), dtype=int)) for s in sd]
                drawn = [
                    [run_figures(*args, sd[i], dr[r]) for i in pk[:, r]] for r in range(resamples)
                ]
                per_side.append((full, drawn))
            for figure in per_side[0][0][0]:
                values = [np.mean([f[figure] for f in full]) for full, _ in per_side]
                means = [
                    np.array([np.mean([f[figure] for f in draw]) for draw in drawn])
                    for _, drawn in per_side
                ]
                low, high = np.quantile(means[1] - means[0], (0.025, 0.975))
                name = " ".join(run) if study == "classifier" else run
                out[name, figure] = (values[0], values[1], low, high)
    return out


def classifier_runs(frames, seeds, skill, seed):
    """Predictions of two arms, each seed its own: right with probability `skill`."""
    g = np.random.default_rng(seed)
    y_true = np.array([k % 3 if k % 5 else 2 for k in range(len(frames))])
    runs = {}
    for arm, p in (("resnet18", "scratch"), skill), (("resnet18", "finetune"), skill + 0.2):
        runs[arm] = {}
        for s in seeds:
            wrong = g.random(len(frames)) > p
            runs[arm][s] = (y_true, np.where(wrong, g.integers(0, 3, len(frames)), y_true))
    return runs


def detector_runs(count, seeds, seed):
    base, truths = random_frames(count, seed=0)
    runs = {}
    for k, (run, s) in enumerate((r, s) for r in ("transfer", "scratch") for s in seeds):
        g = torch.Generator().manual_seed(seed * 100 + k)
        dets = [d[torch.rand(len(d), generator=g) < 0.8] for d in base]
        for d in dets:
            d[:, 4] = torch.rand(len(d), generator=g)
        runs.setdefault(run, {})[s] = {
            "AP50": matches_to_dict(rank_matches(dets, truths, 0.5)),
            "AP50_95": matches_to_dict(rank_matches(dets, truths).capped()),
            "AP40_iou70_all_truths": matches_to_dict(rank_matches(dets, truths, 0.7)),
            "kitti_AP40": None,
        }
    return runs


def side(name, frames, seeds, skill, seed, detector_frames=10):
    return Side(
        name,
        CLASSES,
        crop_frames=frames,
        classifier=classifier_runs(frames, seeds, skill, seed),
        detector_frames=[f"{f:06d}" for f in range(detector_frames)],
        detector=detector_runs(detector_frames, seeds, seed),
    )


FRAMES = [f"{k // 3:06d}" for k in range(36)]  # 12 frames of 3 crops


@pytest.mark.parametrize(
    "b_frames, b_seeds, paired",
    [
        (FRAMES, (0, 1), True),  # the same frames and seeds: paired over both
        (FRAMES, (0, 1, 2), True),  # other seeds: frames paired, seeds drawn apart
        ([f"{k // 2:06d}" for k in range(30)], (5,), False),  # another split: unpaired
    ],
)
def test_every_figure_equals_the_slow_reference(b_frames, b_seeds, paired):
    a = side("A", FRAMES, (0, 1), 0.5, seed=1)
    b = side("B", b_frames, b_seeds, 0.6, seed=2, detector_frames=10 if paired else 9)
    out = diff_sides(a, b, RESAMPLES)
    assert out["classifier_paired"] is paired and out["detector_paired"] is paired
    expected = reference(a, b, RESAMPLES)
    got = {(r["run"], r["figure"]): r for r in out["rows"]}
    assert sorted(got) == sorted(expected)
    for key, (va, vb, low, high) in expected.items():
        row = got[key]
        assert (row["a"], row["b"]) == pytest.approx((va, vb), abs=1e-12), key
        assert row["difference"] == pytest.approx(vb - va, abs=1e-12)
        assert (row["low"], row["high"]) == pytest.approx((low, high), abs=1e-12), key
        assert row["resolved"] == (low > 0 or high < 0)


def test_pairing_narrows_the_interval_of_a_shared_gain():
    """B is A with a third of the wrong crops put right: paired, that gain is resolved; drawn
    apart (as if the frames differed), the same gain is not."""
    a = side("A", FRAMES * 3, (0,), 0.5, seed=1)
    y_true, y_pred = a.classifier["resnet18", "scratch"][0]
    better = y_pred.copy()
    wrong = np.flatnonzero(y_pred != y_true)
    better[wrong[::3]] = y_true[wrong[::3]]
    b = Side(
        "B",
        CLASSES,
        crop_frames=a.crop_frames,
        classifier={("resnet18", "scratch"): {0: (y_true, better)}},
    )
    a.detector = {}
    paired = {r["figure"]: r for r in diff_sides(a, b, 400)["rows"]}["mCA"]
    assert paired["difference"] > 0 and paired["resolved"]
    shifted = Side(
        "B", CLASSES, crop_frames=[f + "x" for f in a.crop_frames], classifier=b.classifier
    )
    unpaired = {r["figure"]: r for r in diff_sides(a, shifted, 400)["rows"]}["mCA"]
    assert unpaired["difference"] == paired["difference"]
    assert not unpaired["resolved"]
    assert unpaired["high"] - unpaired["low"] > 1.5 * (paired["high"] - paired["low"])


def test_markdown_is_a_table_with_a_row_per_figure():
    a = side("A", FRAMES, (0,), 0.5, seed=1)
    b = side("B", [f + "x" for f in FRAMES], (0,), 0.6, seed=2)
    out = diff_sides(a, b, 20)
    lines = markdown(out).splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| Run | Figure | A | B | B - A | 95% interval | Change |"
    assert table[1] == "|---|---|---|---|---|---|---|"
    assert len(table) == 2 + len(out["rows"])
    assert all(line.count("|") == 8 for line in table)
    assert "test frames differ" in markdown(out)


def test_other_classes_are_refused():
    a = side("A", FRAMES, (0,), 0.5, seed=1)
    b = Side("B", ("Car", "Van"))
    with pytest.raises(ValueError, match="other classes"):
        diff_sides(a, b)
