"""Runs that survive an interruption: a checkpoint that is valid only for the inputs it came from.

A `Resumable` holds a run's key: every input that decides what the run computes (its params and
hashes of its data, starting weights and library code). `load` returns the saved state only when
the checkpoint's key equals the run's. A checkpoint made under other inputs, or one that cannot be
read, is moved aside as `<name>.stale-<time>` with a message naming the key fields that differ:
it is never deleted. `save` writes atomically, so an interrupted save leaves the last one whole.

Batch order and augmentation draw from `epoch_generator(seed, epoch)`, which does not depend on
earlier epochs, so a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kitti_pipeline.core.files import save_torch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator for one epoch's batch order and flips; independent of earlier epochs."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def tensor_digest(*tensors: torch.Tensor) -> str:
    """A sha256 of tensors' shapes, dtypes and values: the content a run actually loaded."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{tuple(t.shape)} {t.dtype};".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def differing_fields(saved: Any, key: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields where `saved` and `key` differ (nested mappings compared)."""
    if isinstance(saved, dict) and isinstance(key, dict):
        names = sorted(saved.keys() | key.keys(), key=str)
        joined = [f"{prefix}.{n}" if prefix else str(n) for n in names]
        return [
            field
            for name, dotted in zip(names, joined, strict=True)
            for field in differing_fields(saved.get(name), key.get(name), dotted)
        ]
    return [] if saved == key else [prefix or "key"]


@dataclass(frozen=True)
class Resumable:
    """One run's checkpoint.

    Attributes:
        path: The state file a rerun resumes from.
        key: The run's inputs; a checkpoint with another key is not resumed.
        code_version: Stored with every save, to trace a checkpoint to its code.
        folder: A folder of the run's files that `path` lies in (e.g. every-N-epochs weights):
            set aside with the state, since they belong to the same inputs. None: `path` alone.
        writer: Whether this process may move files aside (only rank 0 under torchrun).
    """

    path: Path
    key: dict
    code_version: str
    folder: Path | None = None
    writer: bool = True

    def load(self) -> dict | None:
        """The saved state when its key is this run's, else None (a stale checkpoint set aside)."""
        if not self.path.exists():
            if self.folder is not None and self.folder.is_dir() and any(self.folder.iterdir()):
                self.set_aside("holds files but no resumable state")
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or foreign file: any reader error
            self.set_aside(f"cannot be read ({type(err).__name__}: {err})")
            return None
        old = saved.get("key") if isinstance(saved, dict) else None
        if old == self.key:
            return saved
        fields = differing_fields(old, self.key) if old is not None else ["no key saved"]
        self.set_aside(f"was made under other inputs (differing: {', '.join(fields)})")
        return None

    def save(self, state: dict, name: str | None = None) -> None:
        """Write `state` with the key, atomically: as the state file, or as `name` in `folder`."""
        path = self.path if name is None else self.folder / name
        save_torch({**state, "key": self.key, "code_version": self.code_version}, path)

    def set_aside(self, reason: str) -> None:
        """Move the checkpoint (its folder, when there is one) to `<name>.stale-<time>`, saying why.

        Args:
            reason: Completes "not resumed, moved aside ...: it <reason>".
        """
        target = self.folder if self.folder is not None else self.path
        if not self.writer or not target.exists():
            return
        stamp = time.strftime("%Y%m%dT%H%M%S")
        stale = target.with_name(f"{target.name}.stale-{stamp}")
        n = 1
        while stale.exists():
            stale = target.with_name(f"{target.name}.stale-{stamp}-{n}")
            n += 1
        os.replace(target, stale)
        print(f"{target}: not resumed, moved aside to {stale}: it {reason}")
