import pytest
import torch

from kitti_pipeline.core import device as device_module
from kitti_pipeline.core.device import describe_device, resolve_device


@pytest.fixture
def old_driver(monkeypatch):
    """A CUDA build of torch on a machine whose driver is too old for it."""

    def init():
        raise RuntimeError("The NVIDIA driver on your system is too old (found version 11040)")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.setattr(torch.version, "cuda", "13.0")


def test_cuda_asked_for_and_unusable_fails_with_torchs_reason(old_driver):
    with pytest.raises(RuntimeError, match=r"cuda was asked for, but torch cannot use CUDA: The "):
        resolve_device("cuda")
    with pytest.raises(RuntimeError, match=r"driver on your system is too old .*CUDA 13\.0"):
        resolve_device("cuda")


def test_auto_says_why_it_falls_back_to_the_cpu(old_driver, capsys):
    assert resolve_device("auto") == torch.device("cpu")
    out = capsys.readouterr().out
    assert out.startswith("device: auto runs on the CPU: torch cannot use CUDA: The NVIDIA")


def test_a_build_without_cuda_falls_back_quietly(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    assert resolve_device("auto") == torch.device("cpu")
    assert capsys.readouterr().out == ""
    with pytest.raises(RuntimeError, match="built without CUDA"):
        resolve_device("cuda")
    assert device_module.describe_device(torch.device("cpu")) == "cpu"
    assert describe_device(resolve_device("cpu")) == "cpu"
