"""The CUDA paths that no CPU run reaches, on one CUDA device (bench/gpu_check.sh runs them).

bfloat16 and float16 + grad-scaler steps, channels_last convolutions, the compiled step, DDP
with SyncBatchNorm, and evaluation on the device: each against the float32, eager, plain or
CPU computation it stands in for, with what it measured recorded.
"""

import dataclasses
import os
import time

import pytest
import torch
import torch.distributed as dist

from kitti_pipeline.core.device import compute_type, grad_scaler
from kitti_pipeline.core.distributed import sync_batchnorm
from kitti_pipeline.core.params import load_params
from kitti_pipeline.detect.darknet import build_darknet
from kitti_pipeline.detect.evaluate import evaluate_detector
from kitti_pipeline.detect.predict import as_input
from kitti_pipeline.detect.train import batch_loss, fit_detector
from kitti_pipeline.detect.yolo import scales_of
from kitti_pipeline.pretrain.coco import make_object_scenes

from ..conftest import ROOT

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
TINY = ROOT / "cfg/yolov3-tiny.cfg"
CUDA = torch.device("cuda")


def scenes(count=16, size=128):
    data = make_object_scenes(count, size, seed=0)
    for target in data.targets:
        target[:, 0] = 0  # one class
    return data


def fresh(cfg=TINY):
    torch.manual_seed(0)
    return build_darknet(cfg, 1).to(CUDA).train()


def train_steps(model, data, steps, amp, scaler=None, net=None, loss_fn=batch_loss):
    """`steps` Adam steps on the whole of `data`: the loss of each, and seconds per step."""
    net = net or model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = scaler or torch.amp.GradScaler("cuda", enabled=False)
    images = data.images.to(CUDA)
    targets = [t.to(CUDA) for t in data.targets]
    losses = []
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(steps):
        terms = loss_fn(net, images, targets, scales_of(model), 1, amp)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(terms["total"]).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(terms["total"].detach())
    torch.cuda.synchronize()
    return [float(x) for x in losses], (time.perf_counter() - began) / steps


def test_bfloat16_steps_follow_float32(record):
    data = scenes()
    full, full_s = train_steps(fresh(), data, 10, amp=False)
    half, half_s = train_steps(fresh(), data, 10, amp=True)  # bfloat16 where supported
    assert torch.cuda.is_bf16_supported()
    assert half[0] == pytest.approx(full[0], rel=2e-2)  # the same weights, another precision
    assert half[-1] < half[0] and all(map(torch.isfinite, map(torch.tensor, half)))
    record(float32_losses=full, bfloat16_losses=half, float32_s=full_s, bfloat16_s=half_s)


def test_float16_with_the_grad_scaler_trains(record, monkeypatch):
    """A GPU without bfloat16 autocasts in float16 and scales the loss: forced here."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert compute_type(CUDA, True) == "float16"
    scaler = grad_scaler(CUDA, True)
    assert scaler.is_enabled()
    data = scenes()
    full, _ = train_steps(fresh(), data, 10, amp=False)
    half, seconds = train_steps(fresh(), data, 10, amp=True, scaler=scaler)
    assert half[0] == pytest.approx(full[0], rel=2e-2)
    assert half[-1] < half[0] and scaler.get_scale() > 0
    record(float16_losses=half, scale=scaler.get_scale(), seconds_per_step=seconds)


def test_channels_last_gives_the_contiguous_output(record):
    model = fresh().eval()
    images = scenes(8).images.to(CUDA)
    with torch.no_grad():
        last = model(as_input(images))  # channels_last
        plain = model((images.float() / 255).contiguous())
    for a, b in zip(last, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
    record(max_difference=max(float((a - b).abs().max()) for a, b in zip(last, plain, strict=True)))


def test_the_compiled_step_trains_to_the_eager_losses_on_cuda(record):
    data = scenes().to(CUDA)
    cfg = dataclasses.replace(
        load_params(ROOT / "params.yaml").detector.train,
        epochs=3,
        eval_every=1,
        batch_size=8,
        amp=False,
        warmup_steps=1,
    )
    losses, seconds = [], []
    for compiled in (False, True):
        model = fresh()
        began = time.perf_counter()
        history, _ = fit_detector(
            model, data, data, dataclasses.replace(cfg, compile=compiled), 0.45
        )
        seconds.append(time.perf_counter() - began)
        losses.append([row["train_total"] for row in history[1:]])
    # The first epoch agrees to rounding; six Adam steps later, within a percent (on the CPU,
    # tests/test_detect_train.py holds the same step to the eager one).
    assert losses[1][0] == pytest.approx(losses[0][0], rel=1e-4)
    assert losses[1][-1] == pytest.approx(losses[0][-1], rel=1e-2)
    record(eager_loss=losses[0], compiled_loss=losses[1], eager_s=seconds[0], compiled_s=seconds[1])


def test_ddp_with_syncbatchnorm_on_one_device_trains_as_the_plain_model(record):
    """One process, NCCL: DDP and SyncBatchNorm (torch's, as `sync_batchnorm` picks on CUDA)
    wrap the network, the loss step is compiled around the wrapped one, and it trains as the
    unwrapped network does."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29561")
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        data = scenes()
        plain, _ = train_steps(fresh(), data, 5, amp=True)
        model = sync_batchnorm(fresh())
        assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[0])
        wrapped, seconds = train_steps(
            model, data, 5, amp=True, net=net, loss_fn=torch.compile(batch_loss)
        )
    finally:
        dist.destroy_process_group()
    assert wrapped == pytest.approx(plain, rel=2e-2)
    record(plain_losses=plain, ddp_losses=wrapped, seconds_per_step=seconds)


def test_evaluation_on_the_device_gives_the_cpu_figures(record):
    model = fresh()
    data = scenes(32)
    train_steps(model, data, 30, amp=False)
    on_gpu = evaluate_detector(model, data.to(CUDA), 0.25, 0.45)
    on_cpu = evaluate_detector(model.cpu(), data, 0.25, 0.45)
    for key in ("AP50", "AP50_95", "precision", "recall", "F1"):
        assert on_gpu[key] == pytest.approx(on_cpu[key], abs=1e-3), key
    record(cuda=on_gpu, cpu=on_cpu)
