"""Shared fixtures: the real params.yaml shrunk for tests, and a way to run real stages."""

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from kitti_pipeline.core.profiles import merge_overrides, read_profile

ROOT = Path(__file__).resolve().parents[1]


def shrink(raw: dict) -> dict:
    """The repo's params.yaml with the `ci` profile applied: few frames, tiny crops and images."""
    merge_overrides(raw, read_profile("ci"))
    return raw


@pytest.fixture
def params_file(tmp_path) -> Path:
    raw = shrink(yaml.safe_load((ROOT / "params.yaml").read_text()))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_stage(name: str, *args: str) -> None:
    """Run `stages/<name>.py` in this process, as `dvc repro` would run it in a subprocess."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([str(a) for a in args])


@pytest.fixture
def stage():
    return run_stage


@pytest.fixture
def dvc_bin() -> str:
    return str(Path(sys.executable).parent / "dvc")
