"""A trained run on the test frames: Table 6's figures, its precision-recall curve, pictures.

Detections are mapped back to frame pixels (those wholly in the letterbox padding left out, as
`kitti-detect` leaves them out) and scored there, first by the study's protocol (YOLO
labels, every car counted): precision, recall and F1 at the confidence threshold, AP@0.5
(all-point), COCO's AP@[.5:.95] and the 40-point AP at IoU 0.7; then, when the frames have native
`label_2` files, by KITTI's: the devkit's easy / moderate / hard AP|R40 (`detect.kitti`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kitti_pipeline.core.bootstrap import frame_resamples, percentile_interval
from kitti_pipeline.core.params import DetectorParams
from kitti_pipeline.data.labels import KITTI_CLASS_MAP, read_kitti_labels
from kitti_pipeline.detect.data import DetectionSet, load_split
from kitti_pipeline.detect.figures import detection_figure
from kitti_pipeline.detect.kitti import (
    KITTI_LEVELS,
    KittiCurve,
    curve_ap,
    curve_to_dict,
    kitti_curve,
    resampled_kitti_ap,
)
from kitti_pipeline.detect.matching import RankedMatches, matches_to_dict, rank_matches
from kitti_pipeline.detect.metrics import (
    class_summary,
    interpolated_pr,
    resampled_average_precision,
    resampled_coco_ap,
    resampled_points_ap,
    resampled_thresholded,
    summarise,
)
from kitti_pipeline.detect.model_files import load_detector
from kitti_pipeline.detect.predict import detect_frames, in_frame, read_image, score_detections

KITTI_TYPES = {study: kitti for kitti, study in KITTI_CLASS_MAP.items()}


def evaluate_detector(
    model: torch.nn.Module,
    data: DetectionSet,
    conf_threshold: float,
    nms_iou: float,
    class_id: int = 0,
) -> dict[str, float]:
    """Precision, recall, F1 at `conf_threshold` and the APs, for `class_id`, on `data`, from
    the detections every checkpoint is scored on (`predict.score_detections`)."""
    detections, _ = score_detections(model, data, nms_iou)
    return class_summary(detections, data, class_id, conf_threshold)


def evaluate_run(
    model_dir: str | Path,
    frames: str | Path,
    split: str | Path,
    det: DetectorParams,
    device: torch.device | str = "cpu",
) -> tuple[dict, list[dict], dict]:
    """Score a run's `best.pt` and `last.pt` on the test frames.

    Each checkpoint's figures of the first class get frame-level bootstrap 95% intervals
    (`ci95`: precision, recall, AP@0.5, F1, AP@[.5:.95], the all-truths AP40 at IoU 0.7 and,
    with `label_2` files, KITTI's AP40
    of each level; the same draws for every run), and its ranked matches are returned frame by
    frame for the comparison of the runs and seeds (`detect.compare`).

    Args:
        model_dir: The run's model folder.
        frames, split: The frames folder and the frame split CSV.
        det: The detector params (classes, image size, post-processing).
        device: Where to detect (the training device).

    Returns:
        The metrics (test frame count; per checkpoint its epoch and, per class, the
        `detection_summary` with KITTI level APs where `label_2` exists), the best
        checkpoint's interpolated precision-recall curve of the first class, and the matches:
        the test frames, the class, and per checkpoint its epoch and `RankedMatches` at IoU 0.5
        (`AP50`), at 0.7 (`AP40_iou70_all_truths`), at COCO's thresholds (`AP50_95`) and KITTI's
        curve of each level (`kitti_AP40`,
        null without `label_2`).
    """
    test = load_split(frames, split, "test", det.classes, det.img_size, det.letterbox_fill)
    label_2 = Path(frames) / "label_2"
    objects = (
        [read_kitti_labels(label_2 / f"{stem}.txt") for stem in test.stems]
        if label_2.is_dir()
        else None
    )
    truths = [
        [test.to_frame(i, t[t[:, 0] == k, 1:]) for i, t in enumerate(test.targets)]
        for k in range(len(det.classes))
    ]
    frames_on_device = test.to(device)
    metrics, pr = {"test_frames": len(test.stems)}, []
    matches = {"stems": test.stems, "class": det.classes[0]}
    draws = frame_resamples(len(test.stems), det.evaluate.bootstrap)
    conf = det.evaluate.conf_threshold
    for name in ("best", "last"):
        model, info = load_detector(Path(model_dir) / f"{name}.pt", device)
        if name == "last" and info["epoch"] == metrics["best"]["epoch"]:
            metrics["last"], matches["last"] = metrics["best"], matches["best"]  # the same
            continue
        detections, _ = score_detections(model, frames_on_device, det.evaluate.nms_iou)
        detections = [in_frame(test, i, d) for i, d in enumerate(detections)]
        result = {"epoch": info["epoch"]}
        for k, class_name in enumerate(det.classes):
            mine = [d[d[:, 5] == k] for d in detections]
            ranked = rank_matches(mine, truths[k])  # one pass: every threshold at once
            summary = summarise(ranked, conf)
            curves = {}
            if objects is not None and class_name in KITTI_TYPES:
                iou = 0.7 if class_name == "Car" else 0.5
                curves = {
                    level: kitti_curve(mine, objects, KITTI_TYPES[class_name], level, iou)
                    for level in KITTI_LEVELS
                }
                summary["kitti_AP40"] = {level: curve_ap(c) for level, c in curves.items()}
            result[class_name] = summary
            if k == 0:
                loose, strict, coco = ranked.at(0.5), ranked.at(0.7), ranked.capped()
                if name == "best":
                    pr = interpolated_pr(loose)
                summary["ci95"] = run_intervals(loose, strict, coco, curves, draws, conf)
                matches[name] = {
                    "epoch": info["epoch"],
                    "AP50": matches_to_dict(loose),
                    "AP50_95": matches_to_dict(coco),
                    "AP40_iou70_all_truths": matches_to_dict(strict),
                    "kitti_AP40": {level: curve_to_dict(c) for level, c in curves.items()} or None,
                }
        metrics[name] = result
    for name in ("best", "last"):
        first = metrics[name][det.classes[0]]
        print(
            f"{name} (epoch {metrics[name]['epoch']}): P {first['precision']:.3f} "
            f"R {first['recall']:.3f} AP50 {first['AP50']:.3f} F1 {first['F1']:.3f}"
        )
    return metrics, pr, matches


def run_intervals(
    ranked: RankedMatches,
    strict: RankedMatches,
    coco: RankedMatches,
    kitti: dict[str, KittiCurve],
    draws: np.ndarray,
    conf_threshold: float,
) -> dict:
    """The 95% intervals, over the frame draws `draws`, of a checkpoint's precision, recall,
    AP@0.5 and F1 (`ranked`, IoU 0.5), the all-truths AP40 at IoU 0.7 (`strict`), AP@[.5:.95]
    (`coco`) and, with `label_2` files, KITTI's AP40 of each level (`kitti`: level -> curve)."""
    values = {
        **resampled_thresholded(ranked, draws, conf_threshold),
        "AP50": resampled_average_precision(ranked, draws),
        "AP50_95": resampled_coco_ap(coco, draws),
        "AP40_iou70_all_truths": resampled_points_ap(strict, draws),
    }
    for level, curve in kitti.items():
        values[f"kitti_AP40_{level}"] = resampled_kitti_ap(curve, draws)
    return {
        key: dict(zip(("low", "high"), percentile_interval(v), strict=True))
        for key, v in values.items()
    }


def draw_test_frames(
    models: str | Path,
    seed: int,
    frames: str | Path,
    split: str | Path,
    det: DetectorParams,
    device: torch.device | str = "cpu",
) -> dict:
    """The study's Figures 6 to 9: test frames with every run's detections, one panel per run.

    Draws the `det.evaluate.pictures` test frames holding the most ground-truth objects, the
    study's two runs (transfer and scratch) of seed `seed` (`models/<run>-s<seed>/best.pt`)
    with their best checkpoints, ground truth in green dashes; detection runs on `device`.

    Returns:
        Frame stem -> its matplotlib Figure.
    """
    test = load_split(frames, split, "test", det.classes, det.img_size, det.letterbox_fill)
    objects = [int((t[:, 0] >= 0).sum()) for t in test.targets]  # DontCare rows are not objects
    busiest = sorted(range(len(test.stems)), key=lambda i: (-objects[i], test.stems[i]))
    chosen = sorted(busiest[: det.evaluate.pictures])
    images_dir = Path(frames) / "images"
    paths = [next(images_dir.glob(f"{test.stems[i]}.*")) for i in chosen]
    images = [read_image(p) for p in paths]

    panels = [[] for _ in chosen]
    for run in ("transfer", "scratch"):  # the study's two runs
        model, info = load_detector(Path(models) / f"{run}-s{seed}" / "best.pt", device)
        detections = detect_frames(
            model,
            images,
            det.img_size,
            det.evaluate.conf_threshold,
            det.evaluate.nms_iou,
            device,
            det.letterbox_fill,
        )
        for panel, found in zip(panels, detections, strict=True):
            panel.append(
                (
                    f"{run}, seed {seed} (epoch {info['epoch']}): {len(found)} detections",
                    found.numpy(),
                )
            )
    figures = {}
    for i, path, panel in zip(chosen, paths, panels, strict=True):
        target = test.targets[i]
        truths = test.to_frame(i, target[target[:, 0] >= 0, 1:]).numpy()
        image = Image.open(path).convert("RGB")
        figures[path.stem] = detection_figure(image, panel, det.classes, truths)
    return figures
