from pathlib import Path

import pytest
import torch

from kitti_pipeline.core import device as device_module
from kitti_pipeline.core.device import amp_dtype, describe_device, grad_scaler, resolve_device


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


def test_autocast_is_bfloat16_where_the_gpu_has_it_else_float16_with_a_scaler(monkeypatch):
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_dtype(gpu, True) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a V100
    assert amp_dtype(gpu, True) is torch.float16
    assert amp_dtype(gpu, False) is None and amp_dtype(cpu, True) is None
    assert not grad_scaler(cpu, True).is_enabled()


def test_cpu_autocast_is_bfloat16_only_where_asked_and_native(monkeypatch):
    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(device_module, "native_cpu_bf16", lambda n=native: n)
        assert amp_dtype(cpu, True, cpu_bf16=True) is (torch.bfloat16 if native else None)
        assert amp_dtype(cpu, True) is None and amp_dtype(cpu, False, cpu_bf16=True) is None
        assert not grad_scaler(cpu, True).is_enabled()  # bfloat16 needs no scaler
    monkeypatch.undo()
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if flags:  # torch's own check agrees with the flags lscpu shows
        assert device_module.native_cpu_bf16() == any(
            f in flags.split() for f in ("avx512_bf16", "amx_tile")
        )


def test_a_float16_scaler_leaves_a_training_step_as_it_was(monkeypatch):
    """The loops step through the scaler: with one on (a power-of-two scale, unscaled before
    the step) the weights after training equal those of plain float32 steps."""
    from kitti_pipeline.classify import train as classify_train
    from kitti_pipeline.classify.models import build_classifier

    data = [
        (torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8), torch.arange(n) % 3)
        for n in (16, 6)
    ]
    cfg = classify_train.FitConfig("adam", 1e-3, 8, 2, ("flip",), False, False)
    results, steps = [], []
    for enabled in (False, True):

        class Counting(torch.amp.GradScaler):
            def step(self, optimizer, *args, **kwargs):
                steps.append(self.get_scale())  # 1.0 when off
                return super().step(optimizer, *args, **kwargs)

        monkeypatch.setattr(
            classify_train, "grad_scaler", lambda d, a, on=enabled: Counting("cpu", enabled=on)
        )
        torch.manual_seed(0)
        model = build_classifier("resnet18", 3)
        history = classify_train.fit(model, "scratch", *data, cfg, seed=0)
        results.append((history, model.state_dict()))
    # 2 epochs of 2 batches each, plain, then scaled by 2**16 and unscaled before the step.
    assert steps == [1.0] * 4 + [65536.0] * 4
    assert results[0][0] == results[1][0]
    for name, value in results[0][1].items():
        assert torch.equal(value, results[1][1][name]), name
