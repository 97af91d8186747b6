"""The detector's model file: a Darknet cfg's text, its weights, and the run that trained them.

The file is self-contained, so `kitti-detect` and the evaluation stages rebuild the network from
it alone, without the cfg file or the params it was trained under.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kitti_pipeline.core.files import atomic_dir, atomic_path
from kitti_pipeline.detect.darknet import Darknet, build_darknet


def epoch_checkpoint(epoch: int) -> str:
    """The file name of an evaluated epoch's weights in a run's checkpoint folder."""
    return f"epoch_{epoch:04d}.pt"


def best_row(history: list[dict]) -> dict:
    """The evaluation with the highest val AP@0.5; the earliest of equals."""
    return max(history, key=lambda row: (row["AP50"], -row["epoch"]))


def save_best_and_last(
    folder: str | Path, model: Darknet, cfg_text: str, checkpoints: str | Path, record: dict
) -> None:
    """Write `best.pt` and `last.pt` of a run into `folder` (atomically, as one folder).

    Args:
        folder: The run's model folder.
        model: The run's network, whose weights are replaced by each chosen epoch's.
        cfg_text: The Darknet cfg it was built from.
        checkpoints: The run's checkpoint folder, holding every evaluated epoch's weights.
        record: The run's record from `train_detector`, with its evaluation `history`.
    """
    history = record["history"]
    with atomic_dir(folder) as out:
        for name, row in (("best", best_row(history)), ("last", history[-1])):
            saved = torch.load(
                Path(checkpoints) / epoch_checkpoint(row["epoch"]),
                map_location="cpu",
                weights_only=True,
            )
            model.load_state_dict(saved["model"])
            save_detector(
                out / f"{name}.pt", model, cfg_text, {**record, "epoch": row["epoch"], "val": row}
            )


def save_detector(path: str | Path, model: Darknet, cfg_text: str, info: dict) -> None:
    """Write a detector file (atomically): the cfg text, the weights and where they came from."""
    with atomic_path(path) as tmp:
        torch.save({"cfg": cfg_text, "state_dict": model.state_dict(), **info}, tmp)


def load_detector(path: str | Path, device: torch.device | str = "cpu") -> tuple[Darknet, dict]:
    """A detector written by `save_detector`, in eval mode, and its file's other entries."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or "cfg" not in data or "state_dict" not in data:
        raise ValueError(f"{path}: not a detector file (needs 'cfg' and 'state_dict')")
    model = build_darknet(path, len(data["classes"]), text=data.pop("cfg"))
    model.load_state_dict(data.pop("state_dict"))
    return model.to(device).eval(), data
