"""The console commands: each answers `--help` without importing torch, documents every option,
and names a bad model file in one line."""

import argparse
import importlib
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest
import torch

from kitti_pipeline.core.device import resolve_device

from .conftest import ROOT

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
BIN = Path(sys.executable).parent


def run(*args):
    return subprocess.run([*map(str, args)], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_imports_neither_torch_nor_dvc(name):
    module, function = SCRIPTS[name].split(":")
    probe = (
        "import sys\n"
        f"sys.argv = [{name!r}, '--help']\n"
        f"from {module} import {function}\n"
        f"try:\n    {function}()\nexcept SystemExit as done:\n    assert done.code == 0\n"
        "print('loaded:', sorted({'torch', 'dvc'} & set(sys.modules)))\n"
    )
    done = run(sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "loaded: []" in done.stdout


class _Parsed(Exception):
    def __init__(self, parser):
        self.parser = parser


def command_parser(entry: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser a console command builds, caught as it starts parsing."""

    def catch(parser, *args, **kwargs):
        raise _Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    module, function = entry.split(":")
    monkeypatch.setattr(sys, "argv", ["command"])
    with pytest.raises(_Parsed) as caught:  # not a user error: `run_cli` lets it through
        getattr(importlib.import_module(module), function)()
    return caught.value.parser


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_option_has_help_text(name, monkeypatch):
    parser = command_parser(SCRIPTS[name], monkeypatch)
    undocumented = [
        action.dest
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert undocumented == [], f"{name}: options without help: {undocumented}"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("kitti-detect", ["--out", "out"]),
        ("kitti-classify", ["--out", "out"]),
    ],
)
def test_a_corrupt_model_file_is_named_in_one_line(tmp_path, name, args):
    model = tmp_path / "model.pt"
    model.write_bytes(bytes(range(256)) * 4)
    image = tmp_path / "frame.png"
    image.write_bytes(b"")
    done = run(BIN / name, "--model", model, *args, image)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{name}: error: {model}: not a readable torch file")


def test_an_unusable_gpu_is_one_line_not_a_warning(monkeypatch, capsys):
    """A CUDA build on a machine whose driver is too old: torch warns when asked whether CUDA
    is available; the device notice says why instead, once."""

    def unavailable():
        warnings.warn("CUDA initialization: the NVIDIA driver is too old", stacklevel=2)
        return False

    monkeypatch.setattr(torch.cuda, "is_available", unavailable)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "init", lambda: (_ for _ in ()).throw(RuntimeError("old")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(RuntimeError, match="device: cuda was asked for, but torch cannot"):
            resolve_device("cuda")
    assert capsys.readouterr().out.count("\n") == 1
