import dataclasses

import pytest

from kitti_pipeline.core.params import ARMS, load_params
from kitti_pipeline.report.tables import detector_table, loss_rows, summarise_detector_seeds

from .conftest import ROOT


def checkpoint(epoch, ap, levels=True):
    car = {
        "precision": 0.8,
        "recall": 0.5,
        "AP50": ap,
        "F1": 2 * 0.8 * 0.5 / 1.3,
        "AP50_95": 0.3,
        "AP40_iou70_all_truths": 0.25,
    }
    if levels:
        car["kitti_AP40"] = {"easy": 0.4, "moderate": 0.3, "hard": 0.2}
    return {"epoch": epoch, "Car": car}


def test_detector_table_by_hand():
    runs = {
        ("transfer", 0): {"best": checkpoint(15, 0.71), "last": checkpoint(20, 0.7)},
        ("scratch", 0): {"best": checkpoint(20, 0.5, False), "last": checkpoint(20, 0.5, False)},
    }
    summary = summarise_detector_seeds(runs, "Car")
    arms = {"transfer": {"best": {"AP50": {"value": 0.71, "low": 0.6, "high": 0.8}}}}
    lines = detector_table(summary, arms).splitlines()
    assert lines[0] == "| Transfer Learning | Checkpoint | Epoch | Precision | Recall | AP | F1 |"
    # The interval on a line of its own inside the cell, so that the table does not wrap.
    assert lines[2] == "| Yes | best | 15 | 0.800 | 0.500 | 0.710<br>[0.600, 0.800] | 0.615 |"
    assert lines[5] == "| No | last | 20 | 0.800 | 0.500 | 0.500 | 0.615 |"
    assert "| Yes | last | 0.300 | 0.250 | 0.400 | 0.300 | 0.200 |" in lines
    assert "| No | best | 0.300 | 0.250 | – | – | – |" in lines


def test_detector_seeds_give_mean_and_sample_std_with_every_epoch():
    runs = {
        ("transfer", 0): {"best": checkpoint(15, 0.6), "last": checkpoint(20, 0.6)},
        ("transfer", 1): {"best": checkpoint(10, 0.7), "last": checkpoint(20, 0.7)},
        ("transfer", 2): {"best": checkpoint(20, 0.8), "last": checkpoint(20, 0.8)},
    }
    best = summarise_detector_seeds(runs, "Car")["transfer"]["best"]
    # 0.6, 0.7, 0.8: mean 0.7, sample std sqrt((0.01 + 0 + 0.01) / 2) = 0.1.
    assert best["AP50"] == pytest.approx(0.7) and best["AP50_std"] == pytest.approx(0.1)
    assert best["precision_std"] == pytest.approx(0.0, abs=1e-12) and best[
        "kitti_AP40_moderate"
    ] == pytest.approx(0.3)
    assert best["seeds"] == 3 and best["epochs"] == [15, 10, 20]
    arms = {"transfer": {"best": {"AP50": {"value": 0.7, "low": 0.55, "high": 0.85}}}}
    row = detector_table({"transfer": {"best": best}}, arms).splitlines()[2]
    assert row == (
        "| Yes | best | 15, 10, 20 | 0.800 ± 0.000 | 0.500 ± 0.000 | 0.700 ± 0.100<br>"
        "[0.550, 0.850] | 0.615 ± 0.000 |"
    )


def test_loss_rows_hold_every_run_of_any_arch_and_seed(tmp_path):
    cfg = load_params(ROOT / "params.yaml").classifier
    cfg = dataclasses.replace(cfg, archs=("mobilenet_v2",), seeds=(3, 7))
    for regime in ARMS:
        for seed in cfg.seeds:
            (tmp_path / f"mobilenet_v2-{regime}-s{seed}.csv").write_text(
                "epoch,train_loss,train_acc,val_loss,val_acc\n"
                f"1,1.{seed},0.5,2.{seed},0.4\n2,0.{seed},0.6,1.{seed},0.5\n"
            )
    rows = loss_rows(tmp_path, cfg)
    assert len(rows) == 4 * 2 * 2
    assert rows[:2] == [
        {"run": "mobilenet_v2-scratch-s3", "epoch": "1", "train_loss": "1.3", "val_loss": "2.3"},
        {"run": "mobilenet_v2-scratch-s3", "epoch": "2", "train_loss": "0.3", "val_loss": "1.3"},
    ]
    assert rows[-1]["run"] == "mobilenet_v2-frozen_random-s7" and rows[-1]["val_loss"] == "1.7"
