"""The code version a result was computed with: the git commit and a hash of the library."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def library_hash() -> str:
    """A hash of every module of `kitti_pipeline`: it changes whenever the library code does."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


# What counts as code: a change here makes the version `-dirty`; a stage's own outputs do not.
CODE_PATHS = ("kitti_pipeline", "stages")


def git_version(root: Path) -> str:
    """The commit checked out in `root`, with `-dirty` when its code differs from that commit.

    Only `CODE_PATHS` count (untracked files there included), so the outputs a `dvc repro`
    writes into tracked metrics and plots do not make the code look modified.
    """
    try:
        commit, changed = (
            subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, check=True
            ).stdout.strip()
            for args in (
                ["describe", "--always", "--abbrev=12"],
                ["status", "--porcelain", "--", *CODE_PATHS],
            )
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if changed else commit


def code_version() -> str:
    """The git commit (with `-dirty` for local changes to the code) and the library hash."""
    return f"{git_version(PACKAGE_DIR.parent)}+src.{library_hash()}"
