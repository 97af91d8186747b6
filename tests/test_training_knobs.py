"""The knobs beyond the study's settings: learning-rate schedules, class balancing, label
smoothing and crop/colour jitter, each against values worked out by hand or by scikit-learn."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from kitti_pipeline.classify.models import build_classifier
from kitti_pipeline.classify.train import (
    FitConfig,
    class_weights,
    draw_jitter,
    epoch_order,
    extract_features,
    fit,
    jitter_images,
)
from kitti_pipeline.core.schedule import schedule_factor
from kitti_pipeline.detect.optim import step_lr

CFG = FitConfig(
    optimizer="adam",
    lr=1e-3,
    batch_size=8,
    epochs=5,
    augment=(),
    cache_frozen_features=True,
    amp=False,
)


@pytest.mark.parametrize(
    "schedule, done, factor",
    [
        ("constant", 0.95, 1.0),
        ("step", 0.79, 1.0),
        ("step", 0.8, 0.1),
        ("step", 0.89, 0.1),
        ("step", 0.9, 0.01),
        ("cosine", 0.0, 1.0),
        ("cosine", 0.5, 0.5),
        ("cosine", 0.75, (1 - math.sqrt(0.5)) / 2),
    ],
)
def test_schedule_factors(schedule, done, factor):
    assert schedule_factor(schedule, done) == pytest.approx(factor, abs=1e-15)


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="'linear'"):
        schedule_factor("linear", 0.5)


def test_detector_lr_burns_in_then_follows_the_schedule():
    # burn-in of 10 steps at power 4, then the schedule over 100 steps
    assert step_lr(1.0, 4, 10, 4, "step", 100) == pytest.approx((5 / 10) ** 4)
    assert step_lr(1.0, 9, 10, 4, "step", 100) == 1.0
    assert step_lr(1.0, 85, 10, 4, "step", 100) == pytest.approx(0.1)
    assert step_lr(1.0, 95, 10, 4, "step", 100) == pytest.approx(0.01)
    assert step_lr(2.0, 50, 10, 4, "cosine", 100) == pytest.approx(1.0)
    assert step_lr(2.0, 50, 10, 4, "constant", 100) == 2.0


def test_class_weights_are_scikit_learns_balanced():
    labels = np.array([0] * 50 + [1] * 7 + [2] * 3)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    got = class_weights(torch.from_numpy(labels), 3).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert class_weights(torch.tensor([0, 0, 2]), 3)[1] == 0  # an absent class


def test_balanced_sampler_draws_the_classes_evenly():
    labels = torch.tensor([0] * 900 + [1] * 90 + [2] * 10).repeat(10)
    order = epoch_order(labels, "sampler", torch.Generator().manual_seed(0))
    shares = torch.bincount(labels[order], minlength=3) / len(order)
    # 10,000 draws: each share's standard error is under 0.005
    np.testing.assert_allclose(shares.numpy(), [1 / 3] * 3, atol=0.02)
    plain = epoch_order(labels, "none", torch.Generator().manual_seed(0))
    assert sorted(plain.tolist()) == list(range(len(labels)))


def test_crop_jitter_takes_the_drawn_corner():
    image = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    image[:, 0, :16, :16] = 200  # the top-left quarter red, the rest black
    # half the side (a quarter of the area) at the top-left corner: all red
    jitter = {"crop": torch.tensor([[0.5, 0.0, 0.0]], dtype=torch.float64)}
    out = jitter_images(image, jitter, torch.tensor([0]))
    assert out[0, 0].min() == 200 and out[0, 1:].max() == 0
    # at the bottom-right corner: all black
    jitter = {"crop": torch.tensor([[0.5, 1.0, 1.0]], dtype=torch.float64)}
    assert jitter_images(image, jitter, torch.tensor([0])).max() == 0


def test_colour_jitter_scales_brightness():
    image = torch.full((1, 3, 8, 8), 100, dtype=torch.uint8)
    jitter = {"colour": torch.tensor([[1.5, 1.0, 1.0]])}
    assert (jitter_images(image, jitter, torch.tensor([0])) == 150).all()


def test_jitter_draws_stay_in_their_ranges():
    draws = draw_jitter(1000, ("crop", "colour"), torch.Generator().manual_seed(0))
    area = draws["crop"][:, 0] ** 2
    assert area.min() >= 0.64 and area.max() <= 1.0
    assert draws["crop"][:, 1:].min() >= 0 and draws["crop"][:, 1:].max() <= 1
    assert draws["colour"].min() >= 0.7 and draws["colour"].max() <= 1.3
    assert draw_jitter(5, ("flip",), torch.Generator()) == {}


def frozen_setup(n=24):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.tensor([0] * (n - 6) + [1] * 4 + [2] * 2)
    torch.manual_seed(0)
    return build_classifier("resnet18", 3), (images, labels)


@pytest.mark.parametrize("balance, smoothing", [("loss", 0.0), ("none", 0.2), ("loss", 0.1)])
def test_train_loss_is_the_weighted_smoothed_cross_entropy(balance, smoothing):
    model, train = frozen_setup()
    # lr 0: the head stays as drawn, and one batch of every crop gives the loss over them all
    cfg = dataclasses.replace(
        CFG, lr=0.0, epochs=1, batch_size=24, balance=balance, label_smoothing=smoothing
    )
    feats = extract_features(model, train[0])
    with torch.no_grad():
        log_p = torch.log_softmax(model.fc(feats).double(), 1)
    counts = torch.bincount(train[1], minlength=3).double()
    w = len(train[1]) / (3 * counts) if balance == "loss" else torch.ones(3, dtype=torch.double)
    total, norm = 0.0, 0.0
    for i, y in enumerate(train[1].tolist()):
        per_class = -log_p[i]
        target = (1 - smoothing) * w[y] * per_class[y] + smoothing * (w * per_class).sum() / 3
        total, norm = total + target, norm + w[y]
    history = fit(model, "frozen", train, train, cfg, seed=0)
    assert history[0]["train_loss"] == pytest.approx(float(total / norm), rel=1e-5)


def test_the_schedule_sets_each_epochs_rate():
    model, train = frozen_setup()
    cfg = dataclasses.replace(CFG, lr=0.01, epochs=5, schedule="cosine")
    rates = []
    fit(
        model,
        "frozen",
        train,
        train,
        cfg,
        seed=0,
        on_epoch=lambda state: rates.append(state["optimizer"]["param_groups"][0]["lr"]),
    )
    expected = [0.01 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(5)]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)


def test_jitter_turns_the_feature_cache_off_and_still_trains():
    model, train = frozen_setup()
    cfg = dataclasses.replace(CFG, epochs=1, augment=("flip", "crop", "colour"))
    history = fit(model, "frozen", train, train, cfg, seed=0)
    assert math.isfinite(history[0]["train_loss"])
