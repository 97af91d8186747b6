"""The classifier study's two file formats: init-weights files and trained-model files.

An init-weights file (stage `init_weights`) holds a pretrained backbone and where it came from;
a model file (stage `train_classifier`) holds a trained classifier with its run, params, history
and code version, which is all `evaluate_classifier` needs to rebuild and score it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from kitti_pipeline.classify.models import build_classifier
from kitti_pipeline.core.files import atomic_path


def save_init(path: str | Path, arch: str, source: str, state: dict, info: dict) -> None:
    """Write an init-weights file (atomically): the backbone state and where it came from."""
    with atomic_path(path) as tmp:
        torch.save({"arch": arch, "source": source, "state_dict": state, "info": info}, tmp)


def load_init(path: str | Path, arch: str) -> dict:
    """Read an init-weights file written by `save_init`, checking it is for `arch`."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or "state_dict" not in data:
        raise ValueError(f"{path}: not an init-weights file (no 'state_dict')")
    if data["arch"] != arch:
        raise ValueError(f"{path}: holds {data['arch']} weights, not {arch}")
    return data


def save_classifier(path: str | Path, model: nn.Module, record: dict) -> None:
    """Write a model file (atomically): the weights and `record` (arch, classes, run, ...)."""
    with atomic_path(path) as tmp:
        torch.save({**record, "state_dict": model.state_dict()}, tmp)


def load_classifier(path: str | Path, classes: tuple[str, ...]) -> tuple[nn.Module, dict]:
    """A classifier written by `save_classifier`, and the rest of its record.

    Raises:
        ValueError: when the file is not a model file, or was trained on other classes.
    """
    record = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(record, dict) or "state_dict" not in record or "arch" not in record:
        raise ValueError(f"{path}: not a classifier model file (needs 'arch' and 'state_dict')")
    if tuple(record["classes"]) != classes:
        raise ValueError(f"{path} was trained on {record['classes']}, not {list(classes)}")
    model = build_classifier(record["arch"], len(classes))
    model.load_state_dict(record.pop("state_dict"))
    return model, record
