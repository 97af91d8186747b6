"""Where a result came from: the code version and the device it ran on."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).resolve().parent


def source_hash() -> str:
    """A hash of the library's sources: it changes whenever the library code does."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def code_version() -> str:
    """The git commit (with `-dirty` for local changes) and the library's source hash."""
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=PACKAGE_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"{commit}+src.{source_hash()}"


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)
