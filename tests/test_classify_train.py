import copy

import pytest
import torch

from kitti_pipeline.classify.models import build_classifier
from kitti_pipeline.classify.train import (
    FitConfig,
    extract_features,
    fit,
    fit_lpft,
    normalise_images,
)

CFG = FitConfig(
    optimizer="adam",
    lr=1e-3,
    batch_size=8,
    epochs=3,
    augment=("flip",),
    cache_frozen_features=False,
    amp=False,
)


def tiny_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return images, torch.arange(n) % 3


@pytest.fixture
def data():
    return tiny_data(24, 0), tiny_data(9, 1)


def pretrained(arch):
    """A model whose BatchNorm statistics are not the defaults, like a pretrained one."""
    torch.manual_seed(5)
    model = build_classifier(arch, 3)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, 32, 32) * 2 + 0.5)
    return model


def run(model, regime, data, cfg, seed=0, **kw):
    torch.manual_seed(123)
    return fit(model, regime, data[0], data[1], cfg, seed, **kw)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_cached_frozen_features_equal_the_full_forward(arch, data):
    a, b = pretrained(arch), pretrained(arch)
    hist_a = run(a, "frozen", data, CFG)
    hist_b = run(b, "frozen", data, FitConfig(**{**CFG.__dict__, "cache_frozen_features": True}))
    for x, y in zip(hist_a, hist_b, strict=True):
        assert x == pytest.approx(y, rel=1e-4, abs=1e-5)
    for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(va, vb, rtol=1e-4, atol=1e-5, msg=name)


def test_extract_features_leaves_modes_alone(data):
    model = pretrained("resnet18")
    model.train()
    feats = extract_features(model, data[0][0])
    assert feats.shape == (24, 512) and model.training and model.layer1.training


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_normalising_leaves_the_input_as_it_was(dtype):
    """A pixel of 255 in the red channel is (1 - 0.485) / 0.229 after normalising, by hand; the
    input keeps its 255, float or not."""
    images = torch.full((1, 3, 2, 2), 255, dtype=dtype)
    x = normalise_images(images)
    assert x[0, 0, 0, 0].item() == pytest.approx((1 - 0.485) / 0.229)
    assert (images == 255).all() and images.dtype == dtype


def test_resumed_run_ends_like_an_uninterrupted_one(data):
    # MobileNetV2's head has dropout, so this also checks that the RNG state is restored.
    base = pretrained("mobilenet_v2")
    whole = copy.deepcopy(base)
    history = run(whole, "finetune", data, CFG)

    saved = {}

    def kill_after_epoch_2(state):
        saved.update(copy.deepcopy(state))
        if state["epoch"] == 2:
            raise KeyboardInterrupt

    first = copy.deepcopy(base)
    with pytest.raises(KeyboardInterrupt):
        run(first, "finetune", data, CFG, on_epoch=kill_after_epoch_2)
    torch.manual_seed(999)  # a new process: the global RNG is whatever it is
    resumed = copy.deepcopy(base)
    resumed_history = fit(resumed, "finetune", data[0], data[1], CFG, 0, resume=saved)
    assert resumed_history == history
    for (name, va), vb in zip(
        whole.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb), name


def test_same_seed_same_result_and_another_seed_differs(data):
    a, b, c = (pretrained("resnet18") for _ in range(3))
    cfg = FitConfig(**{**CFG.__dict__, "epochs": 2})
    assert run(a, "finetune", data, cfg) == run(b, "finetune", data, cfg)
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert run(c, "finetune", data, cfg, seed=1) != run(a, "finetune", data, cfg)


def test_non_finite_loss_stops_the_run(data):
    model = pretrained("resnet18")
    with torch.no_grad():
        model.fc.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1; lower the learning"):
        run(model, "finetune", data, CFG)


def test_invalid_optimizer(data):
    with pytest.raises(ValueError, match="Invalid optimizer 'rmsprop'"):
        run(
            pretrained("resnet18"),
            "finetune",
            data,
            FitConfig(**{**CFG.__dict__, "optimizer": "rmsprop"}),
        )


def test_lpft_trains_the_head_then_every_layer(data):
    """Phase one changes the head alone (backbone weights and BatchNorm statistics as they
    were); phase two, with a fresh optimizer, every layer; the epochs count on through both."""
    model = pretrained("resnet18")
    start = copy.deepcopy(model.state_dict())
    probe = FitConfig(**{**CFG.__dict__, "epochs": 2})
    finetune = FitConfig(**{**CFG.__dict__, "epochs": 1, "lr": 1e-4})
    states = []
    torch.manual_seed(123)
    history = fit_lpft(
        model, *data, probe, finetune, 0, on_epoch=lambda s: states.append(copy.deepcopy(s))
    )
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert [s["phase"] for s in states] == ["probe", "probe", "finetune"]
    after_probe, after = states[1]["model"], model.state_dict()
    heads = {"fc.weight", "fc.bias"}
    assert {k for k in start if not torch.equal(start[k], after_probe[k])} == heads
    backbone = [k for k in start if k not in heads and "num_batches_tracked" not in k]
    assert all(not torch.equal(after_probe[k], after[k]) for k in backbone if "weight" in k)


@pytest.mark.parametrize("stop", [1, 3])
def test_lpft_resumes_in_the_phase_it_stopped_in(data, stop):
    base = pretrained("mobilenet_v2")
    probe = FitConfig(**{**CFG.__dict__, "epochs": 2})
    finetune = FitConfig(**{**CFG.__dict__, "epochs": 2, "lr": 1e-4})
    whole = copy.deepcopy(base)
    torch.manual_seed(123)
    history = fit_lpft(whole, *data, probe, finetune, 0)

    saved = {}

    def kill(state):
        saved.clear()
        saved.update(copy.deepcopy(state))
        if len(saved["history"]) + (2 if state["phase"] == "finetune" else 0) == stop:
            raise KeyboardInterrupt

    torch.manual_seed(123)
    with pytest.raises(KeyboardInterrupt):
        fit_lpft(copy.deepcopy(base), *data, probe, finetune, 0, on_epoch=kill)
    torch.manual_seed(999)
    resumed = copy.deepcopy(base)
    assert fit_lpft(resumed, *data, probe, finetune, 0, resume=saved) == history
    for (name, va), vb in zip(
        whole.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb), name
