"""The detector's files: model files (a Darknet cfg's text, its weights, and the run they belong
to), their provenance, and the weights kept in a run's checkpoint folder.

A model file is self-contained, so `kitti-detect` and the evaluation stages rebuild the network
from it alone, without the cfg file or the params it was trained under.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kitti_pipeline.core.files import atomic_dir, load_torch, save_torch
from kitti_pipeline.detect.darknet import Darknet, build_darknet

# A run's checkpoint folder: the resumable state, and with `keep_checkpoints` the weights of
# every evaluated epoch.
STATE_FILE = "state.pt"
# What a model file holds besides the weights: enough to rebuild and check the network. Where it
# was trained, how long it took and the code version go to the provenance file beside it, so
# equal weights give a byte-equal model file (and DVC does not store or upload it again).
MODEL_FIELDS = ("run", "seed", "classes", "img_size", "letterbox_fill")


def epoch_checkpoint(epoch: int) -> str:
    """The file name of an evaluated epoch's weights in a run's checkpoint folder."""
    return f"epoch_{epoch:04d}.pt"


def best_row(history: list[dict]) -> dict:
    """The evaluation with the highest val AP@0.5; the earliest of equals."""
    return max(history, key=lambda row: (row["AP50"], -row["epoch"]))


def save_best_and_last(
    folder: str | Path, model: Darknet, best: dict, cfg_text: str, record: dict
) -> None:
    """Write `best.pt` and `last.pt` of a run into `folder` (atomically, as one folder).

    Args:
        folder: The run's model folder.
        model: The run's network with the last epoch's weights (replaced by the best's here).
        best: The best evaluation's `{"epoch", "model"}` from `train_detector`.
        cfg_text: The Darknet cfg it was built from.
        record: The run's record from `train_detector`, with its evaluation `history`.
    """
    history = record["history"]
    rows = {row["epoch"]: row for row in history}
    fields = {k: record[k] for k in MODEL_FIELDS}
    with atomic_dir(folder) as out:
        last = history[-1]
        save_detector(
            out / "last.pt", model, cfg_text, {**fields, "epoch": last["epoch"], "val": last}
        )
        model.load_state_dict(best["model"])
        row = rows[best["epoch"]]
        save_detector(
            out / "best.pt", model, cfg_text, {**fields, "epoch": row["epoch"], "val": row}
        )


def detector_provenance(record: dict, best: dict) -> dict:
    """Where a run's model files came from: everything in its record but the weights' own
    fields and the history (in the history CSV), with the epochs chosen as best and last."""
    rest = {k: v for k, v in record.items() if k not in (*MODEL_FIELDS, "history")}
    return {
        "run": record["run"],
        "seed": record["seed"],
        "best_epoch": best["epoch"],
        "last_epoch": record["history"][-1]["epoch"],
        **rest,
    }


def save_detector(path: str | Path, model: Darknet, cfg_text: str, info: dict) -> None:
    """Write a detector file (atomically): the cfg text, the weights and where they came from."""
    save_torch({"cfg": cfg_text, "state_dict": model.state_dict(), **info}, path)


def load_detector(path: str | Path, device: torch.device | str = "cpu") -> tuple[Darknet, dict]:
    """A detector written by `save_detector`, in eval mode, and its file's other entries."""
    data = load_torch(path)
    if not isinstance(data, dict) or "cfg" not in data or "state_dict" not in data:
        raise ValueError(f"{path}: not a detector file (needs 'cfg' and 'state_dict')")
    model = build_darknet(path, len(data["classes"]), text=data.pop("cfg"))
    model.load_state_dict(data.pop("state_dict"))
    return model.to(device).eval(), data
