"""The linear probe of starting weights (`classify.probe`, stage `probe_init`)."""

import json

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import recall_score

from kitti_pipeline.classify.models import random_backbone
from kitti_pipeline.classify.probe import frozen_backbone, linear_probe, paired_difference
from kitti_pipeline.classify.train import extract_features
from kitti_pipeline.core.files import read_csv

from .conftest import run_data_stages
from .reference_metrics import drawn_crops


def test_the_probe_by_hand():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 30)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    separated = centres[labels] + rng.normal(size=(90, 2))
    assert linear_probe((separated, labels), (separated, labels), 3) == 1.0
    # Features that say nothing: the probe predicts the most frequent training class (class 1
    # here), whose recall is 1, the others' 0: mCA 1/3.
    lopsided = np.array([0] * 10 + [1] * 50 + [2] * 30)
    flat = np.zeros((90, 4))
    assert linear_probe((flat, lopsided), (flat, labels), 3) == pytest.approx(1 / 3)
    # A class without val crops counts 0, as the study's mCA counts it.
    assert linear_probe((separated, labels), (separated[:60], labels[:60]), 3) == pytest.approx(
        2 / 3
    )


@pytest.mark.slow
def test_random_init_weights_probe_exactly_as_their_control(stage, params_file, tmp_path):
    """Init weights of the `random` source are the probe's own control (same seed, same
    draw): equal scores, so they do not beat it; the synthetic stand-in gets a real score."""
    run_data_stages(stage, params_file, tmp_path)
    raw = yaml.safe_load(params_file.read_text())
    for source in ("random", "synthetic"):
        raw["classifier"]["init"]["source"] = source
        params = tmp_path / f"{source}.yaml"
        params.write_text(yaml.safe_dump(raw))
        init = tmp_path / f"{source}.pt"
        stage(
            "init_weights",
            *("--params", params, "--arch", "resnet18", "--out", init),
            *("--metrics", tmp_path / f"{source}-init.json"),
        )
        out = tmp_path / f"{source}-probe.json"
        stage(
            "probe_init",
            *("--params", params, "--arch", "resnet18", "--init", init),
            *("--crops", tmp_path / "crops", "--split", tmp_path / "split.csv", "--metrics", out),
        )
        result = json.loads(out.read_text())
        val = [r for r in read_csv(tmp_path / "split.csv") if r["split"] == "val"]
        assert result["val_crops"] == len(val) and 0 <= result["val_mCA"]["init"] <= 1
        cell = result["init_minus_random"]
        assert cell["difference"] == pytest.approx(
            result["val_mCA"]["init"] - result["val_mCA"]["random"]
        )
        assert cell["low"] <= cell["difference"] <= cell["high"]
        if source == "random":
            assert result["val_mCA"]["init"] == result["val_mCA"]["random"]
            assert (cell["low"], cell["high"]) == (0, 0)
            assert result["init_beats_random"] is False
        else:
            assert result["init_beats_random"] == (cell["low"] > 0)


def test_the_paired_interval_matches_a_slow_resampling_loop():
    """The interval of `paired_difference` against crops drawn one by one for each draw of
    frames, scored by scikit-learn's macro recall (mCA)."""
    rng = np.random.default_rng(0)
    frames = [f"{k:03d}" for k in rng.integers(0, 12, 60)]
    labels = rng.integers(0, 3, 60)
    a = np.where(rng.random(60) < 0.8, labels, rng.integers(0, 3, 60))
    b = np.where(rng.random(60) < 0.5, labels, rng.integers(0, 3, 60))
    cell = paired_difference(labels, a, b, frames, 3, 200)

    def mca(index, predicted):
        return recall_score(
            labels[index], predicted[index], labels=[0, 1, 2], average="macro", zero_division=0
        )

    slow = [mca(index, a) - mca(index, b) for index in drawn_crops(frames, 200)]
    everything = list(range(60))
    assert cell["difference"] == pytest.approx(mca(everything, a) - mca(everything, b))
    assert (cell["low"], cell["high"]) == pytest.approx(tuple(np.quantile(slow, [0.025, 0.975])))
    assert cell["resolved"] == (cell["low"] > 0 or cell["high"] < 0)


def test_a_frozen_backbone_from_none_is_random_weights_of_that_seed():
    """None draws the weights that `random_backbone` gives for the seed; a state is loaded as
    given."""
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    state = random_backbone("resnet18", 3, 5)
    drawn = extract_features(frozen_backbone("resnet18", None, 3, 5), images)
    given = extract_features(frozen_backbone("resnet18", state, 3, 0), images)
    other = extract_features(frozen_backbone("resnet18", None, 3, 6), images)
    assert drawn.shape == (4, 512)
    assert torch.equal(drawn, given) and not torch.equal(drawn, other)
