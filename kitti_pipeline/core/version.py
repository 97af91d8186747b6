"""The code version a result was computed with: the git commit and a hash of the library."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def library_hash() -> str:
    """A hash of every module of `kitti_pipeline`: it changes whenever the library code does."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def imported_modules(module: str) -> list[Path]:
    """The files of `module` and of every `kitti_pipeline` module it imports, transitively
    (imports inside functions included): the library code a run started from it executes."""
    found, todo = {}, [module]
    while todo:
        name = todo.pop()
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or name in found:
            continue
        path = Path(spec.origin)
        found[name] = path
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            todo += [n for n in names if n.startswith("kitti_pipeline.") and is_module(n)]
        todo += [name.rpartition(".")[0]] if "." in name else []  # its package's __init__
    return sorted(found.values())


def is_module(name: str) -> bool:
    """Whether `name` is a module (not a function or class imported from one)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent is a module, not a package
        return False


def code_hash(module: str) -> str:
    """A hash of the library code `module` executes (`imported_modules`): an edit elsewhere
    in the library, to the report say, leaves it as it was, and so do comments, docstrings and
    layout, which execute nothing (each module's syntax tree is hashed, not its text)."""
    digest = hashlib.sha256()
    for path in imported_modules(module):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and is_docstring(body[0]):
                node.body = body[1:] or [ast.Pass()]
        name = path.relative_to(PACKAGE_DIR).as_posix()
        digest.update(name.encode() + b"\0" + ast.dump(tree).encode())
    return digest.hexdigest()[:12]


def is_docstring(node: ast.AST) -> bool:
    """Whether a body's first statement is a bare string: the docstring."""
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


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
