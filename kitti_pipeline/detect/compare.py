"""The detector study's comparisons, with paired intervals over frames and seeds: transfer -
scratch, and each trained regime against COCO's head zero-shot, where it starts from.

Every run's best and last checkpoints are scored on the same test frames, and
`evaluate_detector` keeps their ranked matches frame by frame (`metrics.RankedMatches` at IoU 0.5
and at COCO's thresholds, and for KITTI's AP each frame's counts at every threshold,
`kitti.KittiCurve`). The same bootstrap draws (`core.bootstrap`: test frames with replacement)
reweight every run, so a frame that is hard for both runs cancels out of their difference.

With several seeds, each draw also resamples each run's seeds, as the classifier comparison does
(`core.bootstrap.seed_resamples`): a run's value in a draw is the mean over its drawn seeds, and
its value on the test set the mean over all its seeds. Each run's figures get an interval (the
`arms`), and the best checkpoints' AP@0.5, F1, AP@[.5:.95] and KITTI moderate AP40 a difference
for each pair of `DETECTOR_PAIRS` whose runs both ran.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kitti_pipeline.core.bootstrap import (
    difference_cell,
    frame_resamples,
    mean_over_drawn,
    percentile_interval,
    seed_resamples,
)
from kitti_pipeline.core.params import DETECTOR_PAIRS
from kitti_pipeline.detect.kitti import curve_ap, curve_from_dict, resampled_kitti_ap
from kitti_pipeline.detect.matching import matches_from_dict
from kitti_pipeline.detect.metrics import (
    average_precision,
    coco_points_ap,
    recall_points_ap,
    resampled_average_precision,
    resampled_coco_ap,
    resampled_points_ap,
    resampled_thresholded,
    thresholded_scores,
)

CHECKPOINTS = ("best", "last")
# The figures each pair's difference is drawn on.
COMPARED = ("AP50", "F1", "AP50_95", "kitti_AP40_moderate")


def checkpoint_values(matches: dict, draws: np.ndarray, conf_threshold: float) -> dict:
    """One checkpoint's figures on the test frames and in each draw: metric -> (value, (R,)).

    Precision, recall and F1 at `conf_threshold` and AP@0.5 from the matches at IoU 0.5, the
    all-truths AP40 from those at 0.7, AP@[.5:.95] from those at COCO's thresholds, and KITTI's
    AP40 of each level where there are `label_2` files: the figures `evaluate_detector` reports.
    """
    ranked = matches_from_dict(matches["AP50"])
    drawn = resampled_thresholded(ranked, draws, conf_threshold)
    full = thresholded_scores(ranked, conf_threshold)
    out = {name: (full[name], drawn[name]) for name in drawn}
    out["AP50"] = (average_precision(ranked), resampled_average_precision(ranked, draws))
    strict = matches_from_dict(matches["AP40_iou70_all_truths"])
    out["AP40_iou70_all_truths"] = (recall_points_ap(strict), resampled_points_ap(strict, draws))
    coco = matches_from_dict(matches["AP50_95"])
    out["AP50_95"] = (coco_points_ap(coco), resampled_coco_ap(coco, draws))
    for level, data in (matches["kitti_AP40"] or {}).items():
        curve = curve_from_dict(data)
        out[f"kitti_AP40_{level}"] = (curve_ap(curve), resampled_kitti_ap(curve, draws))
    return out


def compare_detectors(
    matches: str | Path,
    runs: tuple[str, ...],
    seeds: tuple[int, ...],
    conf_threshold: float,
    resamples: int,
) -> dict:
    """Each run's figures with 95% intervals, and the differences of `DETECTOR_PAIRS` with
    paired ones.

    Args:
        matches: The folder of `<run>-s<seed>.json` matches files (`evaluate_detector`).
        runs: The runs to compare (scratch and `detector.regimes`).
        seeds: The seeds of every run.
        conf_threshold: Where precision, recall and F1 count detections.
        resamples: Bootstrap draws.

    Returns:
        `arms`: `{run: {checkpoint: {metric: {value, low, high}}}}`; for each `DETECTOR_PAIRS`
        pair that ran, `<a>-<b>`: `{metric: {difference, low, high, resolved}}` at the best
        checkpoints; and the epochs of every run's checkpoints.

    Raises:
        ValueError: when two runs were not scored on the same test frames.
    """
    files = {(run, s): Path(matches) / f"{run}-s{s}.json" for run in runs for s in seeds}
    data = {key: json.loads(path.read_text()) for key, path in files.items()}
    first = next(iter(files))
    for key, run in data.items():
        if run["stems"] != data[first]["stems"]:
            raise ValueError(
                f"{files[key]} and {files[first]} hold other test frames: evaluate both again"
            )
    draws = frame_resamples(len(data[first]["stems"]), resamples)
    picks = seed_resamples(runs, len(seeds), resamples)
    arms, drawn = {}, {}
    for run in runs:
        for checkpoint in CHECKPOINTS:
            per_seed = [
                checkpoint_values(data[run, s][checkpoint], draws, conf_threshold) for s in seeds
            ]
            cells = {}
            for metric in per_seed[0]:
                in_draw = mean_over_drawn(np.stack([v[metric][1] for v in per_seed]), picks[run])
                drawn[run, checkpoint, metric] = in_draw
                low, high = percentile_interval(in_draw)
                value = float(np.mean([v[metric][0] for v in per_seed]))
                cells[metric] = {"value": value, "low": low, "high": high}
            arms.setdefault(run, {})[checkpoint] = cells
    differences = {}
    for a, b in DETECTOR_PAIRS:
        if a not in runs or b not in runs:
            continue
        cells = differences.setdefault(f"{a}-{b}", {})
        for metric in COMPARED:
            if metric in arms[a]["best"]:
                cells[metric] = difference_cell(
                    arms[a]["best"][metric]["value"] - arms[b]["best"][metric]["value"],
                    drawn[a, "best", metric] - drawn[b, "best", metric],
                )
    return {
        "resamples": resamples,
        "seeds": list(seeds),
        "test_frames": len(data[first]["stems"]),
        "epochs": {
            run: {c: [data[run, s][c]["epoch"] for s in seeds] for c in CHECKPOINTS} for run in runs
        },
        "arms": arms,
        **differences,
    }
