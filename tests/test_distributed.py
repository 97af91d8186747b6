"""Data-parallel training under torchrun: 2 CPU processes with the gloo backend."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from kitti_pipeline.core.distributed import World
from kitti_pipeline.core.files import read_csv

from .conftest import ROOT, run_data_stages
from .test_classifier_pipeline import train_and_evaluate
from .test_detector_pipeline import initialise, train


def test_shards_cover_the_batch_and_weights_average_to_one():
    batch = torch.tensor([7, 3, 9, 1, 4])
    shards = [World(rank, 2).shard(batch) for rank in range(2)]
    assert [s.tolist() for s, _ in shards] == [[7, 3, 9], [1, 4]]
    # Weighted slice means, averaged over 2 processes: (1.2 * mean3 + 0.8 * mean2) / 2
    # = (sum3 + sum2) / 5, the batch mean.
    assert [w for _, w in shards] == pytest.approx([1.2, 0.8])
    # A last batch smaller than the world: rank 2 gets a stand-in with weight 0.
    small = torch.tensor([5, 6])
    assert [(s.tolist(), w) for s, w in (World(r, 3).shard(small) for r in range(3))] == [
        ([5], 1.5),
        ([6], 1.5),
        ([5], 0.0),
    ]
    assert World().shard(batch)[0].tolist() == batch.tolist() and World().shard(batch)[1] == 1.0


def torchrun(script: str, *args) -> str:
    command = [
        str(Path(sys.executable).parent / "torchrun"),
        "--standalone",
        "--nproc-per-node=2",
        str(ROOT / "stages" / script),
        *map(str, args),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_two_process_classifier_training_equals_one_process(stage, params_file, tmp_path):
    """The frozen regime trains only the head on fixed features, so 2 processes, each on half of
    every batch, must reach the weights of 1 process on whole batches (BatchNorm plays no part)."""
    run_data_stages(stage, params_file, tmp_path)
    arch = "resnet18"
    stage(
        "init_weights",
        *("--params", params_file, "--arch", arch),
        *("--out", tmp_path / f"init/{arch}.pt", "--metrics", tmp_path / f"init/{arch}.json"),
    )
    run = train_and_evaluate(stage, params_file, tmp_path, arch, "frozen")
    single = torch.load(tmp_path / f"models/{run}.pt", weights_only=True)

    out = tmp_path / "ddp"
    torchrun(
        "train_classifier.py",
        *("--params", params_file, "--arch", arch, "--regime", "frozen", "--seed", 0),
        *("--crops", tmp_path / "crops", "--split", tmp_path / "split.csv"),
        *("--init", tmp_path / f"init/{arch}.pt", "--checkpoint", out / "ckpt.pt"),
        *("--model", out / "model.pt", "--provenance", out / "model.json"),
        *("--history", out / "history.csv"),
    )
    parallel = torch.load(out / "model.pt", weights_only=True)
    processes = [
        json.loads(p.read_text())["processes"]
        for p in (out / "model.json", tmp_path / f"models/{run}.json")
    ]
    assert processes == [2, 1]
    for key, value in single["state_dict"].items():
        torch.testing.assert_close(parallel["state_dict"][key], value, rtol=1e-4, atol=1e-5)
    one, two = read_csv(tmp_path / f"history/{run}.csv"), read_csv(out / "history.csv")
    for a, b in zip(one, two, strict=True):
        for column in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert float(b[column]) == pytest.approx(float(a[column]), rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_two_process_detector_training_equals_one_process(stage, params_file, tmp_path):
    """2 processes on half of every batch train the detector to the weights of 1 process on
    whole batches, BatchNorm included: its statistics are taken over the global batch. Only
    rank 0 evaluates and writes. (No jitter or autocast: per-frame random draws and bfloat16
    sums would differ between a half batch and a whole one.)"""
    run_data_stages(stage, params_file, tmp_path)
    raw = yaml.safe_load(params_file.read_text())
    raw["detector"]["train"].update(amp=False, scale=0.0, translate=0.0, colour=0.0, lr=1e-4)
    params_file.write_text(yaml.safe_dump(raw))
    initialise(stage, params_file, tmp_path)
    train(stage, params_file, tmp_path, "transfer")
    single = torch.load(tmp_path / "models/transfer-s0/last.pt", weights_only=True)

    out = tmp_path / "ddp"
    printed = torchrun(
        "train_detector.py",
        *("--params", params_file, "--run-name", "transfer", "--seed", 0),
        *("--cfg", ROOT / raw["detector"]["cfg"], "--frames", tmp_path / "frames"),
        *("--split", tmp_path / "frame_split.csv", "--init", tmp_path / "init.weights"),
        *("--init-info", tmp_path / "init.json", "--checkpoints", out / "ckpt"),
        *("--model", out / "model", "--provenance", out / "model.json"),
        *("--history", out / "history.csv"),
    )
    assert printed.count("transfer: loaded") == 2  # each process builds the model
    assert printed.count("best val AP50") == 1 and printed.count("epoch 0:") == 1
    assert json.loads((out / "model.json").read_text())["processes"] == 2
    parallel = torch.load(out / "model/last.pt", weights_only=True)
    assert parallel["epoch"] == single["epoch"] == 2
    weights = single["state_dict"]
    assert any("running_var" in key for key in weights)
    # Per tensor, the distance relative to its size: float32 sums in another order (a half
    # batch's, then the all-reduce) move it about 5e-4 here after 4 Adam steps; BatchNorm
    # statistics per process instead of global move it about 4e-2.
    for key, value in weights.items():
        if value.is_floating_point():
            gap = (parallel["state_dict"][key] - value).norm() / value.norm().clamp_min(1e-12)
            assert gap < 2e-3, (key, gap.item())
    one, two = read_csv(tmp_path / "history/transfer-s0.csv"), read_csv(out / "history.csv")
    assert [int(r["epoch"]) for r in two] == [0, 1, 2]  # epoch 0: the starting weights
    for a, b in zip(one, two, strict=True):
        for column in ("train_total", "val_loss", "AP50"):
            if a[column]:
                assert float(b[column]) == pytest.approx(float(a[column]), rel=1e-3, abs=1e-4)
