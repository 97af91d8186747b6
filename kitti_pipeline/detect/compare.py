"""The detector study's comparison, transfer - scratch, with a paired frame-level interval.

Both runs' best checkpoints are scored on the same test frames, and `evaluate_detector` keeps
their ranked matches frame by frame (`metrics.RankedMatches`, and for KITTI's AP each frame's
counts at every threshold, `kitti.KittiCurve`). The same bootstrap draws
(`core.bootstrap`: test frames with replacement) reweight both, and each draw gives the
difference in AP@0.5, in F1 at the confidence threshold and, with `label_2` files, in KITTI's
moderate AP40: a frame that is hard for both runs cancels out.
"""

from __future__ import annotations

import json
from pathlib import Path

from kitti_pipeline.core.bootstrap import difference_cell, frame_resamples
from kitti_pipeline.detect.kitti import curve_ap, curve_from_dict, resampled_kitti_ap
from kitti_pipeline.detect.metrics import (
    average_precision,
    matches_from_dict,
    resampled_average_precision,
    resampled_f1,
    summary_f1,
)


def compare_detectors(
    transfer: str | Path, scratch: str | Path, conf_threshold: float, resamples: int
) -> dict:
    """transfer - scratch on the test frames: each metric's difference, 95% interval, verdict.

    Args:
        transfer, scratch: The runs' matches files (`evaluate_detector --matches`).
        conf_threshold: Where F1 counts detections.
        resamples: Bootstrap draws.

    Raises:
        ValueError: when the two runs were not scored on the same test frames.
    """
    runs = [json.loads(Path(p).read_text()) for p in (transfer, scratch)]
    if runs[0]["stems"] != runs[1]["stems"]:
        raise ValueError(f"{transfer} and {scratch} hold other test frames: evaluate both again")
    draws = frame_resamples(len(runs[0]["stems"]), resamples)
    cells = {}
    families = {
        "AP50": (
            matches_from_dict,
            lambda m: average_precision(m.hits, int(m.truths.sum())),
            resampled_average_precision,
        ),
        "F1": (
            matches_from_dict,
            lambda m: summary_f1(m, conf_threshold),
            lambda m, d: resampled_f1(m, d, conf_threshold),
        ),
        "kitti_AP40_moderate": (
            curve_from_dict,
            curve_ap,
            resampled_kitti_ap,
        ),
    }
    for name, (read, value, resampled) in families.items():
        source = "kitti_AP40_moderate" if name == "kitti_AP40_moderate" else "AP50"
        if runs[0][source] is None:
            continue
        a, b = (read(run[source]) for run in runs)
        cells[name] = difference_cell(
            value(a) - value(b), resampled(a, draws) - resampled(b, draws)
        )
    return {
        "resamples": resamples,
        "test_frames": len(runs[0]["stems"]),
        "epochs": {"transfer": runs[0]["epoch"], "scratch": runs[1]["epoch"]},
        "transfer-scratch": cells,
    }
