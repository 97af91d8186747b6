"""A linear probe of starting weights: how much do their frozen features tell the classes apart?

The backbone's features of the training crops (in eval mode, as the frozen regime computes them)
train a multinomial logistic regression (scikit-learn's, on standardised features, C = 1, run to
convergence), scored by mean class accuracy on the val crops: never the test crops, since the
probe judges the pretraining stand-in, which must not be tuned on the test split. The same probe
on randomly initialised weights of the same architecture is the control: starting weights worth
transferring beat it. Unlike the frozen regime's head (Adam at `classifier.train.lr` for a few
hundred steps), the probe converges, so it measures the features rather than the schedule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kitti_pipeline.classify.metrics import class_scores, confusion_matrix
from kitti_pipeline.classify.model_files import load_init
from kitti_pipeline.classify.models import build_classifier, load_backbone, to_device
from kitti_pipeline.classify.train import extract_features, load_crops
from kitti_pipeline.core.files import read_csv

PROBE = "logistic regression (scikit-learn, standardised features, C=1, lbfgs to convergence)"


def linear_probe(
    train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], num_classes: int
) -> float:
    """Mean class accuracy on `val` of a logistic regression fitted on `train` (features,
    labels); a class without val crops counts 0, as the study's mCA counts it."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    probe.fit(*train)
    predicted = probe.predict(val[0])
    recall = class_scores(confusion_matrix(val[1], predicted, num_classes)[None])[0][0]
    return float(recall.mean())


def probe_scores(
    arch: str,
    backbones: dict[str, dict | None],
    crops: str | Path,
    split: str | Path,
    classes: tuple[str, ...],
    seed: int,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """The linear probe's val mCA on the features of each backbone state (None: random weights
    drawn from `seed`, as the `random` init source draws them), by name."""
    rows = read_csv(split)
    sets = {
        name: load_crops(crops, [r for r in rows if r["split"] == name], classes)
        for name in ("train", "val")
    }
    scores = {}
    for name, state in backbones.items():
        torch.manual_seed(seed)
        model = build_classifier(arch, len(classes))
        if state is not None:
            load_backbone(model, arch, state, name)
        model = to_device(model, arch, device)
        features = {
            split_name: (
                extract_features(model, images.to(device)).cpu().numpy(),
                labels.numpy(),
            )
            for split_name, (images, labels) in sets.items()
        }
        scores[name] = linear_probe(features["train"], features["val"], len(classes))
    return scores


def probe_init(
    arch: str,
    init: str | Path,
    crops: str | Path,
    split: str | Path,
    classes: tuple[str, ...],
    seed: int,
    device: torch.device | str = "cpu",
) -> dict:
    """The linear probe's val mCA on the features of the init file's backbone and on those of
    random weights drawn from `seed`, and whether the init file's beat them."""
    backbones = {"init": load_init(init, arch)["state_dict"], "random": None}
    scores = probe_scores(arch, backbones, crops, split, classes, seed, device)
    rows = read_csv(split)
    return {
        "probe": PROBE,
        "train_crops": sum(r["split"] == "train" for r in rows),
        "val_crops": sum(r["split"] == "val" for r in rows),
        "val_mCA": scores,
        "init_beats_random": scores["init"] > scores["random"],
    }
