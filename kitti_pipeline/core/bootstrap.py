"""Frame-level bootstrap: the resampling behind every interval of both studies.

Crops and detections of one frame share its scene, light and neighbours, so they do not vary
independently: a draw takes the test frames with replacement, each with everything it holds.
Every run is resampled with the same draws (one seed), so differences between runs are paired:
a frame that is hard for both counts against both in the same draws.
"""

from __future__ import annotations

import numpy as np

# The seed of every bootstrap, so that every run draws the same frames.
BOOTSTRAP_SEED = 0


def frame_resamples(count: int, resamples: int, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """How often each of `count` frames is drawn, in each of `resamples` draws: (R, count).

    Each draw takes `count` frames with replacement (a multinomial count per frame).
    """
    return np.random.default_rng(seed).multinomial(count, np.full(count, 1 / count), resamples)


def frame_index(frames: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct frames, sorted (the columns of `frame_resamples`), and each item's column."""
    names = sorted(set(frames))
    return names, np.searchsorted(names, frames)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The (1 - level) / 2 and (1 + level) / 2 quantiles of bootstrap values."""
    low, high = np.quantile(values, ((1 - level) / 2, (1 + level) / 2))
    return float(low), float(high)


def difference_cell(difference: float, draws: np.ndarray) -> dict:
    """A paired difference (a - b on all the data) and its interval from per-draw differences:
    resolved when the interval excludes 0."""
    low, high = percentile_interval(draws)
    return {
        "difference": difference,
        "low": low,
        "high": high,
        "resolved": bool(low > 0 or high < 0),
    }


def seed_resamples(arms, seeds: int, resamples: int, seed: int = BOOTSTRAP_SEED) -> dict:
    """The seeds each arm takes in each draw, with replacement and apart for each arm:
    arm -> (seeds, resamples) indices into its seeds, the arms drawn in sorted order.

    An arm's value in a draw is then the mean over its drawn seeds (`mean_over_drawn`), and
    its interval holds the training noise between seeds as well as the test frames'.
    """
    rng = np.random.default_rng(seed + 1)
    return {arm: rng.integers(0, seeds, (seeds, resamples)) for arm in sorted(arms)}


def mean_over_drawn(per_seed: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Each draw's mean over its drawn seeds: values (S, R) per seed and draw -> (R,)."""
    return per_seed[picks, np.arange(per_seed.shape[1])].mean(0)
