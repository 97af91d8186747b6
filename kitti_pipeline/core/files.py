"""Atomic file output and the CSV/JSON formats stages exchange.

A stage that dies half-way must not leave a file that looks complete: everything is written under
a temporary name in the target's folder and renamed into place, which is atomic on POSIX.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds.

    The file gets the mode `open` would give a new file (0644 under the usual umask), not the
    private 0600 of a temporary file, so others can read a report written this way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` if the block succeeds.

    The folder gets the mode `mkdir` would give it (0755 under the usual umask), not 0700.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, rows: list[dict], fieldnames: list[str]) -> None:
    """Write dict rows as CSV (atomically), columns in `fieldnames` order."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def save_torch(obj: Any, path: str | Path) -> None:
    """`torch.save` atomically, into a file whose bytes depend only on `obj`.

    Given a path, torch names the records inside the archive after the file, so the same
    tensors saved under the temporary name of each write would differ byte for byte; through
    a file object the records always get the same name.
    """
    import torch  # here, so that the modules that only read and write files need no torch

    with atomic_path(path) as tmp, tmp.open("wb") as f:
        torch.save(obj, f)


def load_torch(path: str | Path) -> Any:
    """`torch.load` of tensors and plain containers (`weights_only`), onto the CPU.

    Raises:
        FileNotFoundError: when there is no such file.
        ValueError: naming the file, when it is cut short or not a torch file at all (torch
            raises a different error for each cause, with a page of advice).
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise ValueError(f"{path}: not a readable torch file ({type(err).__name__})") from None


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
