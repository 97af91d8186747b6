"""Shared fixtures: the real params.yaml shrunk for tests, and a way to run real stages."""

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def shrink(raw: dict) -> dict:
    """The repo's params.yaml, made small enough for a test: few frames, tiny crops and images."""
    raw["synthesize"]["frames"] = 24
    raw["crop"]["image_size"] = 32
    raw["split"]["train_crops"] = 60
    raw["split"]["val_crops"] = 20
    raw["classifier"]["init"].update(pretrain_images=40, pretrain_image_size=32, pretrain_epochs=1)
    raw["classifier"]["train"].update(epochs=2, batch_size=16)
    raw["classifier"]["bootstrap"] = 50
    detector = raw["detector"]
    detector["img_size"] = 128
    detector["init"].update(pretrain_frames=10, pretrain_epochs=1, pretrain_batch_size=8)
    detector["train"].update(epochs=2, eval_every=1, batch_size=8, warmup_steps=2)
    detector["evaluate"]["pictures"] = 2
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
