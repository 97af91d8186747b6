"""Paired comparisons of the classifier study's arms: does one beat another, beyond the noise?

Every run is scored on the same test crops, so the same frame-level bootstrap draws
(`core.bootstrap`: frames with replacement, each with all its crops) apply to every run,
and each draw gives each comparison's difference. Sampling noise the two arms share (a hard frame
is hard for both) then cancels, which an unpaired comparison of two intervals cannot do.

With several seeds, each draw also resamples the seeds of each arm, with replacement and apart
for each arm: an arm's value in the draw is the mean over its drawn seeds. The interval then holds
the training noise between seeds as well as the sampling noise of the test frames. The reported
difference is that of the means over all seeds on all test crops.

Comparisons: for each architecture, finetune - scratch, frozen - scratch, finetune - frozen and
frozen - frozen_random (the starting weights against random ones, both frozen); for each regime,
ResNet18 - MobileNetV2. A difference is resolved when its 95% interval excludes 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kitti_pipeline.classify.metrics import class_scores, confusion_matrix, resampled_confusions
from kitti_pipeline.core.bootstrap import (
    BOOTSTRAP_SEED,
    difference_cell,
    frame_resamples,
    mean_over_drawn,
    percentile_interval,
    seed_resamples,
)
from kitti_pipeline.core.files import read_csv
from kitti_pipeline.core.params import ARMS, CONTROL, REGIMES
from kitti_pipeline.data.splits import read_crop_split

METRICS = ("mCA", "mF1")
# The regime pairs a - b compared within an architecture, where both ran: the study's, then LP-FT
# against its own probe (the frozen head it starts from) and against fine-tuning.
REGIME_PAIRS = (
    ("finetune", "scratch"),
    ("frozen", "scratch"),
    ("finetune", "frozen"),
    ("frozen", CONTROL),
    ("lpft", "frozen"),
    ("lpft", "finetune"),
)


def arm_pairs(
    archs: tuple[str, ...], arms: tuple[str, ...] = ARMS
) -> list[tuple[str, tuple[str, str], tuple[str, str]]]:
    """Each comparison of `arms` as (group, arm a, arm b), an arm being (arch, regime): the
    regime pairs within each architecture, then the architecture pairs within each regime."""
    pairs = [(a, b) for a, b in REGIME_PAIRS if a in arms and b in arms]
    out = [(arch, (arch, a), (arch, b)) for arch in archs for a, b in pairs]
    for i, first in enumerate(archs):
        for second in archs[i + 1 :]:
            group = f"{first}-{second}"
            out += [(group, (first, r), (second, r)) for r in REGIMES if r in arms]
    return out


def table_scores(cms: np.ndarray, classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The columns of Tables 4 and 5 (mCA, mF1, mPrecision, mRecall, `acc_<class>`) of a stack
    of confusion matrices (R, K, K), each (R,)."""
    recall, precision, f1 = class_scores(cms)
    out = {
        "mCA": recall.mean(-1),
        "mF1": f1.mean(-1),
        "mPrecision": precision.mean(-1),
        "mRecall": recall.mean(-1),
    }
    out.update({f"acc_{name}": recall[..., k] for k, name in enumerate(classes)})
    return out


def arm_sampler(
    predictions: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]],
    frames: list[str],
    seeds: tuple[int, ...],
    classes: tuple[str, ...],
    resamples: int,
    seed: int = BOOTSTRAP_SEED,
):
    """`arm_values(arm, column)`: an arm's value in each bootstrap draw (the mean over its
    drawn seeds, on the drawn frames) and on all test crops (the mean over all its seeds).

    The frame draws are those of `metrics.bootstrap_intervals` for the same seed, and each
    arm's seeds are drawn once per draw, the same for every column and comparison.
    """
    draws = frame_resamples(len(set(frames)), resamples, seed)
    drawn, full = {}, {}
    for run, (y_true, y_pred) in predictions.items():
        cms = resampled_confusions(y_true, y_pred, frames, draws, len(classes))
        drawn[run] = table_scores(cms, classes)
        full[run] = table_scores(confusion_matrix(y_true, y_pred, len(classes))[None], classes)
    picks = seed_resamples({run[:2] for run in predictions}, len(seeds), resamples, seed)

    def arm_values(arm: tuple[str, str], column: str) -> tuple[np.ndarray, float]:
        per_seed = np.stack([drawn[(*arm, s)][column] for s in seeds])  # (S, R)
        in_draw = mean_over_drawn(per_seed, picks[arm])
        return in_draw, float(np.mean([full[(*arm, s)][column][0] for s in seeds]))

    return arm_values


def compare_arms(
    predictions: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]],
    frames: list[str],
    archs: tuple[str, ...],
    seeds: tuple[int, ...],
    classes: tuple[str, ...],
    resamples: int,
    seed: int = BOOTSTRAP_SEED,
) -> dict:
    """Every comparison's difference, 95% interval and verdict, for mCA and mF1.

    Args:
        predictions: (arch, regime, seed) -> (true, predicted) class ids of the test crops, in
            the same crop order for every run.
        frames: The frame of each test crop.
        archs, seeds: The study's architectures and seeds.
        classes: The class names, in id order.
        resamples: Bootstrap draws.
        seed: Their seed (the draws of `metrics.bootstrap_intervals` for the same seed).

    Returns:
        `{group: {"<a>-<b>": {metric: {difference, low, high, resolved}}}}`, a group being an
        architecture (its regimes compared) or `<arch>-<arch>` (the architectures per regime).
    """
    return differences(arm_sampler(predictions, frames, seeds, classes, resamples, seed), archs)


def differences(arm_values, archs: tuple[str, ...], arms: tuple[str, ...] = ARMS) -> dict:
    """`compare_arms`' cells from an `arm_sampler`, for the pairs of `arms`."""
    out: dict = {}
    for group, a, b in arm_pairs(archs, arms):
        name = f"{a[1]}-{b[1]}" if a[0] == b[0] else a[1]
        cells = {}
        for metric in METRICS:
            a_draws, a_value = arm_values(a, metric)
            b_draws, b_value = arm_values(b, metric)
            cells[metric] = difference_cell(a_value - b_value, a_draws - b_draws)
        out.setdefault(group, {})[name] = cells
    return out


def compare_classifiers(
    split: str | Path,
    predictions: str | Path,
    classes: tuple[str, ...],
    archs: tuple[str, ...],
    seeds: tuple[int, ...],
    resamples: int,
    arms: tuple[str, ...] = ARMS,
) -> dict:
    """`compare_arms` over every run's prediction CSV (`evaluate_classifier`'s) of `arms`, with
    the frame of each test crop from the split.

    Raises:
        ValueError: when a run's predictions are not of the split's test crops, in its order.
    """
    tests = [r for r in read_crop_split(split) if r["split"] == "test"]
    crops = [r["crop"] for r in tests]
    runs = {}
    for arch in archs:
        for regime in arms:
            for s in seeds:
                path = Path(predictions) / f"{arch}-{regime}-s{s}.csv"
                rows = read_csv(path)
                if [r["crop"] for r in rows] != crops:
                    raise ValueError(f"{path}: not the test crops of {split}, in its order")
                runs[(arch, regime, s)] = tuple(
                    np.array([classes.index(r[column]) for r in rows])
                    for column in ("actual", "predicted")
                )
    frames = [r["frame"] for r in tests]
    arm_values = arm_sampler(runs, frames, seeds, classes, resamples)  # one set of draws for both
    return {
        "resamples": resamples,
        "seeds": list(seeds),
        "test_frames": len(set(frames)),
        "test_crops": len(crops),
        "arms": intervals(arm_values, sorted({run[:2] for run in runs}), classes),
        "comparisons": differences(arm_values, archs, arms),
    }


def arm_intervals(
    predictions: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]],
    frames: list[str],
    seeds: tuple[int, ...],
    classes: tuple[str, ...],
    resamples: int,
) -> dict:
    """Each arm's Table 4 and 5 columns with 95% intervals from the comparisons' draws (frames
    and, with several seeds, seeds): `{arch: {regime: {column: {value, low, high}}}}`."""
    arm_values = arm_sampler(predictions, frames, seeds, classes, resamples)
    return intervals(arm_values, sorted({run[:2] for run in predictions}), classes)


def intervals(arm_values, arms: list[tuple[str, str]], classes: tuple[str, ...]) -> dict:
    """`arm_intervals`' cells from an `arm_sampler`."""
    out: dict = {}
    for arch, regime in arms:
        cells = {}
        for column in table_scores(np.zeros((1, len(classes), len(classes))), classes):
            draws, value = arm_values((arch, regime), column)
            low, high = percentile_interval(draws)
            cells[column] = {"value": value, "low": low, "high": high}
        out.setdefault(arch, {})[regime] = cells
    return out
