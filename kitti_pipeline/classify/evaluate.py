"""One trained classifier scored on the held-out test crops: the study's Tables 4 and 5 per run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kitti_pipeline.classify.metrics import bootstrap_intervals, classification_metrics
from kitti_pipeline.classify.model_files import load_classifier
from kitti_pipeline.classify.models import to_device
from kitti_pipeline.classify.train import load_crops, predict
from kitti_pipeline.data.splits import read_crop_split

PREDICTION_FIELDS = ["crop", "actual", "predicted"]


@dataclass(frozen=True)
class Evaluation:
    """What the `evaluate_classifier` stage writes."""

    metrics: dict  # mCA, macro F1/precision/recall, per-class accuracy, ci95, parameter counts
    predictions: list[dict]  # per test crop: crop, actual, predicted (DVC's confusion plot)
    confusion: np.ndarray  # (C, C) counts, rows the true class
    title: str  # run and mCA, for the confusion figure


def evaluate_classifier(
    model_file: str | Path,
    crops: str | Path,
    split: str | Path,
    classes: tuple[str, ...],
    bootstrap: int,
    device: torch.device | str = "cpu",
) -> Evaluation:
    """Score a model file on the test crops, with frame-level bootstrap 95% intervals.

    Args:
        model_file: A file from `save_classifier`.
        crops, split: The crop stage's folder and the split CSV.
        classes: Class names in id order; the model must have been trained on them.
        bootstrap: Resamples of the test frames (the same draws for every run).
        device: Where to predict (the training device).

    Raises:
        ValueError: when the model was trained on other classes or another crop size.
    """
    model, record = load_classifier(model_file, classes)
    to_device(model, record["arch"], device)
    rows = [r for r in read_crop_split(split) if r["split"] == "test"]
    images, labels = load_crops(crops, rows, classes)
    size = images.shape[-1]
    if record.get("image_size") != size:
        raise ValueError(
            f"{model_file} was trained on {record.get('image_size')}-px crops, but {crops} holds "
            f"{size}-px crops: retrain it on these crops"
        )
    predicted = predict(model, images.to(device)).argmax(1).cpu()

    y_true, y_pred = labels.numpy(), predicted.numpy()
    metrics = classification_metrics(y_true, y_pred, classes)
    frames = [r["frame"] for r in rows]
    intervals = bootstrap_intervals(y_true, y_pred, frames, len(classes), bootstrap)
    confusion = metrics.pop("confusion")
    run = f"{record['arch']} {record['regime']} (seed {record['seed']})"
    print(f"{run}: mCA {metrics['mCA']:.3f}, accuracy {metrics['accuracy']:.3f}")
    return Evaluation(
        metrics={
            **metrics,
            "ci95": {name: {"low": lo, "high": hi} for name, (lo, hi) in intervals.items()},
            "params": {"trainable": record["trainable_params"], "total": record["total_params"]},
            "test_crops": len(rows),
        },
        predictions=[
            {"crop": r["crop"], "actual": classes[t], "predicted": classes[p]}
            for r, t, p in zip(rows, y_true, y_pred, strict=True)
        ],
        confusion=confusion,
        title=f"{run}: mCA {metrics['mCA']:.3f}",
    )
