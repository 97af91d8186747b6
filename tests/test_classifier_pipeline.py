"""The classifier stages, end to end, on the shrunk params."""

import json

import numpy as np
import pytest
import torch
import torchvision
import yaml
from sklearn.metrics import precision_recall_fscore_support

from kitti_pipeline.classify.model_files import save_init
from kitti_pipeline.core.files import read_csv

from .conftest import run_data_stages

pytestmark = pytest.mark.slow
CLASSES = ["Car", "Person", "Cyclist"]


def train_and_evaluate(stage, params, out, arch, regime, seed=0):
    run = f"{arch}-{regime}-s{seed}"
    stage(
        "train_classifier",
        "--params",
        params,
        "--arch",
        arch,
        "--regime",
        regime,
        "--seed",
        seed,
        "--crops",
        out / "crops",
        "--split",
        out / "split.csv",
        # Scratch and the control read no init weights, as their stages in dvc.yaml pass none.
        *(("--init", out / f"init/{arch}.pt") if regime in ("frozen", "finetune", "lpft") else ()),
        "--checkpoint",
        out / f"ckpt/{run}.pt",
        "--model",
        out / f"models/{run}.pt",
        "--provenance",
        out / f"models/{run}.json",
        "--history",
        out / f"history/{run}.csv",
    )
    stage(
        "evaluate_classifier",
        "--params",
        params,
        "--crops",
        out / "crops",
        "--split",
        out / "split.csv",
        *("--models", out / "models", "--runs", run, "--metrics", out / "metrics"),
        *("--predictions", out / "pred", "--figures", out / "confusion"),
    )
    return run


def test_classifier_stages(stage, params_file, tmp_path, capsys):
    raw = yaml.safe_load(params_file.read_text())
    raw["classifier"]["regimes"] = ["frozen", "finetune", "lpft"]
    params_file.write_text(yaml.safe_dump(raw))
    run_data_stages(stage, params_file, tmp_path)
    for arch in ("resnet18", "mobilenet_v2"):
        stage(
            "init_weights",
            "--params",
            params_file,
            "--arch",
            arch,
            "--out",
            tmp_path / f"init/{arch}.pt",
            "--metrics",
            tmp_path / f"init/{arch}.json",
        )
        for regime in ("scratch", "frozen", "finetune", "lpft", "frozen_random"):
            train_and_evaluate(stage, params_file, tmp_path, arch, regime)

    run = "mobilenet_v2-frozen-s0"
    metrics = json.loads((tmp_path / f"metrics/{run}.json").read_text())
    pred = read_csv(tmp_path / f"pred/{run}.csv")
    test_rows = [r for r in read_csv(tmp_path / "split.csv") if r["split"] == "test"]
    assert [p["crop"] for p in pred] == [r["crop"] for r in test_rows]
    assert [p["actual"] for p in pred] == [r["class"] for r in test_rows]
    y_true = np.array([CLASSES.index(p["actual"]) for p in pred])
    y_pred = np.array([CLASSES.index(p["predicted"]) for p in pred])
    macro = precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0
    )
    # The tiny test split may lack a class: it then counts with recall 0 (zero_division=0).
    assert (metrics["mPrecision"], metrics["mCA"], metrics["mF1"]) == pytest.approx(macro[:3])
    assert metrics["params"] == {"trainable": 1280 * 3 + 3, "total": 2_227_715}
    assert metrics["ci95"]["mCA"]["low"] <= metrics["mCA"] <= metrics["ci95"]["mCA"]["high"]
    history = read_csv(tmp_path / f"history/{run}.csv")
    assert [int(h["epoch"]) for h in history] == [1, 2]

    stage(
        "compare_classifiers",
        *("--params", params_file, "--split", tmp_path / "split.csv"),
        *("--predictions", tmp_path / "pred", "--out", tmp_path / "comparisons.json"),
    )
    comparisons = json.loads((tmp_path / "comparisons.json").read_text())
    assert comparisons["test_frames"] == len({r["frame"] for r in test_rows})
    assert set(comparisons["comparisons"]) == {"resnet18", "mobilenet_v2", "resnet18-mobilenet_v2"}
    own = comparisons["comparisons"]["mobilenet_v2"]["frozen-scratch"]["mCA"]
    scratch = json.loads((tmp_path / "metrics/mobilenet_v2-scratch-s0.json").read_text())
    assert own["difference"] == pytest.approx(metrics["mCA"] - scratch["mCA"])
    assert own["low"] <= own["difference"] <= own["high"]
    control = json.loads((tmp_path / "metrics/mobilenet_v2-frozen_random-s0.json").read_text())
    against = comparisons["comparisons"]["mobilenet_v2"]["frozen-frozen_random"]["mCA"]
    assert against["difference"] == pytest.approx(metrics["mCA"] - control["mCA"])
    stage(
        "classifier_report",
        "--params",
        params_file,
        "--comparisons",
        tmp_path / "comparisons.json",
        "--runs",
        tmp_path / "metrics",
        "--summary",
        tmp_path / "summary.json",
        "--tables",
        tmp_path / "tables.md",
        "--histories",
        tmp_path / "history",
        "--losses",
        tmp_path / "losses.csv",
    )
    losses = read_csv(tmp_path / "losses.csv")
    # Every run, every epoch: 2 each, and LP-FT's 2 of the head then 2 of every layer.
    assert len(losses) == 2 * (4 * 2 + 4)
    mine = [r for r in losses if r["run"] == run]
    assert [(r["epoch"], r["val_loss"]) for r in mine] == [
        (h["epoch"], h["val_loss"]) for h in history
    ]
    summary = json.loads((tmp_path / "summary.json").read_text())
    frozen = summary["mobilenet_v2"]["frozen"]
    assert frozen["mCA"] == metrics["mCA"] and frozen["seeds"] == 1 and "mCA_std" not in frozen
    assert frozen["acc_Car"] == metrics["per_class"]["Car"]["accuracy"]
    tables = (tmp_path / "tables.md").read_text()
    assert "### Table 4: ResNet18" in tables and "| MobileNetV2 pretrained, frozen |" in tables
    assert "| ResNet18 random weights, frozen (control) |" in tables
    assert "### Comparisons: paired differences" in tables

    # A rerun with nothing changed resumes from the finished checkpoint and trains nothing more.
    model = torch.load(tmp_path / f"models/{run}.pt", weights_only=True)
    took = json.loads((tmp_path / f"models/{run}.json").read_text())["train_seconds"]
    saved = torch.load(tmp_path / f"ckpt/{run}.pt", weights_only=True)["train_seconds"]
    assert 0 < saved <= took  # the time up to the last epoch's save
    capsys.readouterr()
    train_and_evaluate(stage, params_file, tmp_path, "mobilenet_v2", "frozen")
    assert "resuming after epoch 2" in capsys.readouterr().out
    again = torch.load(tmp_path / f"models/{run}.pt", weights_only=True)
    assert all(torch.equal(v, again["state_dict"][k]) for k, v in model["state_dict"].items())
    assert json.loads((tmp_path / f"metrics/{run}.json").read_text()) == metrics
    # Its training time is the first run's, not the moment the rerun took.
    assert json.loads((tmp_path / f"models/{run}.json").read_text())["train_seconds"] >= saved


def test_classifier_run_is_deterministic(stage, params_file, tmp_path):
    run_data_stages(stage, params_file, tmp_path)
    stage(
        "init_weights",
        "--params",
        params_file,
        "--arch",
        "resnet18",
        "--out",
        tmp_path / "init/resnet18.pt",
        "--metrics",
        tmp_path / "init/resnet18.json",
    )
    results = []
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        for name in ("crops", "split.csv", "init"):
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).symlink_to(tmp_path / name)
        run = train_and_evaluate(stage, params_file, out, "resnet18", "finetune")
        results.append(
            (
                json.loads((out / f"metrics/{run}.json").read_text()),
                (out / f"history/{run}.csv").read_text(),
            )
        )
    assert results[0] == results[1]


def test_random_init_is_a_seeded_torchvision_backbone(stage, params_file, tmp_path):
    import torchvision
    import yaml

    raw = yaml.safe_load(params_file.read_text())
    raw["classifier"]["init"].update(source="random", seed=5)
    params_file.write_text(yaml.safe_dump(raw))
    stage(
        "init_weights",
        *("--params", params_file, "--arch", "resnet18"),
        *("--out", tmp_path / "init.pt", "--metrics", tmp_path / "init.json"),
    )
    saved = torch.load(tmp_path / "init.pt", weights_only=True)["state_dict"]
    torch.manual_seed(5)
    reference = torchvision.models.resnet18(num_classes=3).state_dict()
    assert set(saved) == set(reference) - {"fc.weight", "fc.bias"}
    assert all(torch.equal(saved[k], reference[k]) for k in saved)
    assert json.loads((tmp_path / "init.json").read_text())["source"] == "random"


def test_a_new_crop_size_retrains_and_an_old_model_is_refused(stage, params_file, tmp_path, capsys):
    import shutil

    import yaml

    run_data_stages(stage, params_file, tmp_path)
    run = train_and_evaluate(stage, params_file, tmp_path, "mobilenet_v2", "scratch")
    history = (tmp_path / f"history/{run}.csv").read_text()
    split = (tmp_path / "split.csv").read_bytes()
    (tmp_path / "old").mkdir()
    shutil.copy(tmp_path / f"models/{run}.pt", tmp_path / "old/old.pt")

    raw = yaml.safe_load(params_file.read_text())
    raw["crop"]["image_size"] = 40
    params_file.write_text(yaml.safe_dump(raw))
    stage(
        "crop",
        "--params",
        params_file,
        "--frames",
        tmp_path / "frames",
        "--out",
        tmp_path / "crops",
    )
    stage(
        "split",
        *("--params", params_file, "--crops", tmp_path / "crops", "--frames", tmp_path / "frames"),
        *("--out", tmp_path / "split.csv", "--frame-split", tmp_path / "frame_split.csv"),
    )
    assert (tmp_path / "split.csv").read_bytes() == split  # what the old resume key looked at
    capsys.readouterr()
    train_and_evaluate(stage, params_file, tmp_path, "mobilenet_v2", "scratch")
    out = capsys.readouterr().out
    assert "resuming" not in out and "(differing: crops)" in out
    assert len(read_csv(tmp_path / f"history/{run}.csv")) == 2  # both epochs trained anew
    # The losses are those of a model trained on the new crops, not the old model's.
    assert (tmp_path / f"history/{run}.csv").read_text() != history
    new = torch.load(tmp_path / f"models/{run}.pt", weights_only=True)
    old = torch.load(tmp_path / "old/old.pt", weights_only=True)
    assert (new["image_size"], old["image_size"]) == (40, 32)
    assert not torch.equal(
        new["state_dict"]["features.0.0.weight"], old["state_dict"]["features.0.0.weight"]
    )
    with pytest.raises(ValueError, match=r"old\.pt was trained on 32-px crops, but .* 40-px"):
        stage(
            "evaluate_classifier",
            *("--params", params_file, "--crops", tmp_path / "crops"),
            *("--split", tmp_path / "split.csv", "--models", tmp_path / "old", "--runs", "old"),
            *("--metrics", tmp_path / "m", "--predictions", tmp_path / "p"),
            *("--figures", tmp_path / "c"),
        )


def test_the_control_is_the_frozen_regime_on_random_weights(stage, params_file, tmp_path):
    """`frozen_random` trains exactly as `frozen` does from an init file of randomly initialised
    weights drawn from `classifier.init.seed` (0 in the ci profile), written here by hand."""
    run_data_stages(stage, params_file, tmp_path)
    torch.manual_seed(0)
    state = torchvision.models.resnet18(num_classes=3).state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    save_init(tmp_path / "init/resnet18.pt", "resnet18", "random", backbone, {})
    models = {}
    for regime in ("frozen", "frozen_random"):
        run = train_and_evaluate(stage, params_file, tmp_path, "resnet18", regime)
        models[regime] = torch.load(tmp_path / f"models/{run}.pt", weights_only=True)
    frozen, control = models["frozen"]["state_dict"], models["frozen_random"]["state_dict"]
    assert frozen.keys() == control.keys()
    assert all(torch.equal(frozen[k], control[k]) for k in frozen)
    assert models["frozen_random"]["regime"] == "frozen_random"
    assert models["frozen_random"]["trainable_params"] == 512 * 3 + 3


def test_head_epochs_set_the_frozen_regimes_epochs_only(stage, params_file, tmp_path):
    """`classifier.train.head_epochs: 3` (the ci profile's epochs are 2): the frozen arm and
    the control train 3 epochs, fine-tuning and scratch 2, LP-FT 3 then 2; null gives every
    regime 2."""
    run_data_stages(stage, params_file, tmp_path)
    raw = yaml.safe_load(params_file.read_text())
    assert raw["classifier"]["train"]["epochs"] == 2
    raw["classifier"]["train"]["head_epochs"] = 3
    params = tmp_path / "head.yaml"
    params.write_text(yaml.safe_dump(raw))
    torch.manual_seed(0)
    state = torchvision.models.mobilenet_v2(num_classes=3).state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    save_init(tmp_path / "init/mobilenet_v2.pt", "mobilenet_v2", "random", backbone, {})
    epochs = {}
    for regime in ("scratch", "frozen", "finetune", "lpft", "frozen_random"):
        run = train_and_evaluate(stage, params, tmp_path, "mobilenet_v2", regime)
        epochs[regime] = [int(r["epoch"]) for r in read_csv(tmp_path / f"history/{run}.csv")]
    assert epochs == {
        "scratch": [1, 2],
        "frozen": [1, 2, 3],
        "finetune": [1, 2],
        "lpft": [1, 2, 3, 4, 5],
        "frozen_random": [1, 2, 3],
    }
