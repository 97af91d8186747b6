"""The classifier study's two file formats: init-weights files and trained-model files.

An init-weights file (stage `init_weights`) holds a pretrained backbone and where it came from;
a model file (stage `train_classifier`) holds a trained classifier with its run, classes and crop
size, which is all `evaluate_classifier` needs to rebuild and score it. Neither holds where or
when it was made: that goes to a provenance file beside it, so equal weights give a byte-equal
file (and DVC does not store or upload it again).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from kitti_pipeline.classify.models import build_classifier
from kitti_pipeline.core.files import load_torch, save_torch


def save_init(path: str | Path, arch: str, source: str, state: dict, info: dict) -> None:
    """Write an init-weights file (atomically): the backbone state and where it came from."""
    save_torch({"arch": arch, "source": source, "state_dict": state, "info": info}, path)


def load_init(path: str | Path, arch: str) -> dict:
    """Read an init-weights file written by `save_init`, checking it is for `arch`."""
    data = load_torch(path)
    if not isinstance(data, dict) or "state_dict" not in data:
        raise ValueError(f"{path}: not an init-weights file (no 'state_dict')")
    if data["arch"] != arch:
        raise ValueError(f"{path}: holds {data['arch']} weights, not {arch}")
    return data


# What a model file holds besides the weights.
MODEL_FIELDS = (
    "arch",
    "regime",
    "seed",
    "classes",
    "image_size",
    "trainable_params",
    "total_params",
)


def save_classifier(path: str | Path, model: nn.Module, record: dict) -> None:
    """Write a model file (atomically): the weights and `record`'s `MODEL_FIELDS`."""
    save_torch({**{k: record[k] for k in MODEL_FIELDS}, "state_dict": model.state_dict()}, path)


def classifier_provenance(record: dict) -> dict:
    """Where a model file came from: the run, and everything in its record that the model file
    leaves out but the history (in the history CSV): params, seconds, device, code version."""
    run = {k: record[k] for k in ("arch", "regime", "seed")}
    rest = {k: v for k, v in record.items() if k not in (*MODEL_FIELDS, "history")}
    return {**run, **rest}


def load_classifier(
    path: str | Path, classes: tuple[str, ...] | None = None
) -> tuple[nn.Module, dict]:
    """A classifier written by `save_classifier`, and the rest of its record.

    Args:
        path: The model file.
        classes: The classes it must have been trained on, in id order; None: its own.

    Raises:
        ValueError: when the file is not a model file, or was trained on other classes.
    """
    record = load_torch(path)
    if not isinstance(record, dict) or "state_dict" not in record or "arch" not in record:
        raise ValueError(f"{path}: not a classifier model file (needs 'arch' and 'state_dict')")
    classes = tuple(record["classes"]) if classes is None else classes
    if tuple(record["classes"]) != classes:
        raise ValueError(f"{path} was trained on {record['classes']}, not {list(classes)}")
    model = build_classifier(record["arch"], len(classes))
    model.load_state_dict(record.pop("state_dict"))
    return model, record
