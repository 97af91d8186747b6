"""A linear probe of starting weights: how much do their frozen features tell the classes apart?

The backbone's features of the training crops (in eval mode, as the frozen regime computes them)
train a multinomial logistic regression (scikit-learn's, on standardised features, C = 1, run to
convergence), scored by mean class accuracy on the val crops: never the test crops, since the
probe judges the pretraining stand-in, which must not be tuned on the test split. The same probe
on randomly initialised weights of the same architecture is the control: starting weights worth
transferring beat it, with a paired frame-level bootstrap interval of the difference (as
`classify.compare` gives the arms') that lies above 0. Unlike the frozen regime's head (Adam at
`classifier.train.lr` for a few hundred steps), the probe converges, so it measures the features
rather than the schedule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kitti_pipeline.classify.metrics import (
    confusion_matrix,
    macro_scores,
    resampled_confusions,
    scores_from_confusion,
)
from kitti_pipeline.classify.model_files import load_init
from kitti_pipeline.classify.models import (
    build_classifier,
    load_backbone,
    random_backbone,
    to_device,
)
from kitti_pipeline.classify.train import extract_features, load_crops
from kitti_pipeline.core.bootstrap import difference_cell, frame_resamples
from kitti_pipeline.data.splits import read_crop_split

PROBE = "logistic regression (scikit-learn, standardised features, C=1, lbfgs to convergence)"


def probe_predictions(train: tuple[np.ndarray, np.ndarray], features: np.ndarray) -> np.ndarray:
    """The classes that a logistic regression fitted on `train` (features, labels) predicts for
    `features`."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    probe.fit(*train)
    return probe.predict(features)


def linear_probe(
    train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], num_classes: int
) -> float:
    """Mean class accuracy on `val` of a logistic regression fitted on `train` (features,
    labels); a class without val crops counts 0, as the study's mCA counts it."""
    return _mca(val[1], probe_predictions(train, val[0]), num_classes)


def _mca(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    return scores_from_confusion(confusion_matrix(labels, predicted, num_classes))["mCA"]


def paired_difference(
    labels: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    frames: list[str],
    num_classes: int,
    resamples: int,
) -> dict:
    """mCA of predictions `a` minus that of `b` on the same crops, with its 95% interval from
    frame-level bootstrap draws (`core.bootstrap`) that resample both alike."""
    draws = frame_resamples(len(set(frames)), resamples)
    per_draw = [
        macro_scores(resampled_confusions(labels, p, frames, draws, num_classes))["mCA"]
        for p in (a, b)
    ]
    difference = _mca(labels, a, num_classes) - _mca(labels, b, num_classes)
    return difference_cell(difference, per_draw[0] - per_draw[1])


def probe_val_predictions(
    arch: str,
    backbones: dict[str, dict | None],
    crops: str | Path,
    rows: list[dict],
    classes: tuple[str, ...],
    seed: int,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The val crops' labels, and the linear probe's predictions for them on the features of
    each backbone state (None: random weights drawn from `seed`, as the `random` init source
    draws them), by name. `rows` are the split's."""
    sets = {
        name: load_crops(crops, [r for r in rows if r["split"] == name], classes)
        for name in ("train", "val")
    }
    predicted = {}
    for name, state in backbones.items():
        model = frozen_backbone(arch, state, len(classes), seed, device, name)
        train, val = (extract_features(model, sets[s][0].to(device)).cpu().numpy() for s in sets)
        predicted[name] = probe_predictions((train, sets["train"][1].numpy()), val)
    return sets["val"][1].numpy(), predicted


def frozen_backbone(
    arch: str,
    state: dict | None,
    num_classes: int,
    seed: int,
    device: torch.device | str = "cpu",
    origin: str = "backbone",
) -> torch.nn.Module:
    """A `num_classes` classifier of `arch` on `device` with the backbone state `state` (None:
    random weights drawn from `seed`, as the `random` init source draws them), for
    `extract_features`; `origin` names the state in a shape error."""
    model = build_classifier(arch, num_classes)
    load_backbone(
        model, arch, random_backbone(arch, num_classes, seed) if state is None else state, origin
    )
    return to_device(model, arch, device)


def probe_scores(
    arch: str,
    backbones: dict[str, dict | None],
    crops: str | Path,
    split: str | Path,
    classes: tuple[str, ...],
    seed: int,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """The linear probe's val mCA on the features of each backbone state (as
    `probe_val_predictions` takes them), by name."""
    rows = read_crop_split(split)
    labels, predicted = probe_val_predictions(arch, backbones, crops, rows, classes, seed, device)
    return {name: _mca(labels, p, len(classes)) for name, p in predicted.items()}


def probe_init(
    arch: str,
    init: str | Path,
    crops: str | Path,
    split: str | Path,
    classes: tuple[str, ...],
    seed: int,
    resamples: int,
    device: torch.device | str = "cpu",
) -> dict:
    """The linear probe's val mCA on the features of the init file's backbone and on those of
    random weights drawn from `seed`; their difference with its interval over `resamples`
    draws of the val frames; and whether the init file's beat random ones (an interval above
    0)."""
    rows = read_crop_split(split)
    backbones = {"init": load_init(init, arch)["state_dict"], "random": None}
    labels, predicted = probe_val_predictions(arch, backbones, crops, rows, classes, seed, device)
    frames = [r["frame"] for r in rows if r["split"] == "val"]
    cell = paired_difference(
        labels, predicted["init"], predicted["random"], frames, len(classes), resamples
    )
    return {
        "probe": PROBE,
        "train_crops": sum(r["split"] == "train" for r in rows),
        "val_crops": len(frames),
        "val_mCA": {name: _mca(labels, p, len(classes)) for name, p in predicted.items()},
        "init_minus_random": cell,
        "init_beats_random": cell["low"] > 0,
    }
