"""The real data stages, end to end, on a shrunk copy of params.yaml."""

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from kitti_pipeline.files import read_csv

from .conftest import ROOT, shrink

pytestmark = pytest.mark.slow


def run_data_stages(stage, params, out):
    stage("synthesize", "--params", params, "--out", out / "frames")
    stage("crop", "--params", params, "--frames", out / "frames", "--out", out / "crops")
    stage("split", "--params", params, "--crops", out / "crops", "--out", out / "split.csv")
    stage(
        "dataset_report",
        "--params",
        params,
        "--crops",
        out / "crops",
        "--split",
        out / "split.csv",
        "--metrics",
        out / "dataset.json",
        "--figure",
        out / "crops.png",
    )


def test_stages_end_to_end(stage, params_file, tmp_path):
    run_data_stages(stage, params_file, tmp_path)
    rows = read_csv(tmp_path / "split.csv")
    assert rows and all((tmp_path / "crops" / r["crop"]).exists() for r in rows)

    # No frame gives crops to two splits.
    splits_of_frame = {}
    for r in rows:
        splits_of_frame.setdefault(r["frame"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_of_frame.values())

    # The metrics agree with a count made here from the split file.
    metrics = json.loads((tmp_path / "dataset.json").read_text())
    for split in ("train", "val", "test"):
        counted = Counter(r["class"] for r in rows if r["split"] == split)
        assert metrics["crops"][split] == {
            "total": counted.total(),
            **{k: counted[k] for k in ("Car", "Person", "Cyclist")},
        }
    assert metrics["frames"]["read"] == 24
    skipped = read_csv(tmp_path / "crops" / "skipped.csv")
    assert metrics["skipped"]["total"] == len(skipped)
    # Every label line became a crop or a counted skip.
    label_lines = sum(
        len(p.read_text().splitlines()) for p in (tmp_path / "frames" / "labels").glob("*.txt")
    )
    assert label_lines == len(rows) + len(skipped)
    assert (tmp_path / "crops.png").stat().st_size > 0


def test_same_seed_gives_byte_identical_outputs(stage, params_file, tmp_path):
    for run in ("a", "b"):
        stage("synthesize", "--params", params_file, "--out", tmp_path / run / "frames")
        stage(
            "crop",
            "--params",
            params_file,
            "--frames",
            tmp_path / run / "frames",
            "--out",
            tmp_path / run / "crops",
        )
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "crops/manifest.csv").read_bytes() == (b / "crops/manifest.csv").read_bytes()
    for path in sorted((a / "frames").rglob("*.*")):
        assert path.read_bytes() == (b / path.relative_to(a)).read_bytes(), path


def test_dvc_repro_then_no_op_then_an_experiment(tmp_path, dvc_bin):
    """`dvc repro` twice (the second does nothing), then `dvc exp run -S` on a classifier knob
    reruns only the classifier stages, on a detector knob only the detector stages, and
    `dvc metrics diff` shows the change."""
    import yaml

    for name in ("dvc.yaml", "stages", "kitti_pipeline", "cfg"):
        src = ROOT / name
        copy = shutil.copytree if src.is_dir() else shutil.copy
        copy(src, tmp_path / name)
    raw = shrink(yaml.safe_load((ROOT / "params.yaml").read_text()))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {
        **os.environ,
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }

    def run(*cmd):
        return subprocess.run(
            cmd, cwd=tmp_path, env=env, check=True, capture_output=True, text=True
        ).stdout

    run("git", "init", "-q")
    run(dvc_bin, "init", "-q")
    first = run(dvc_bin, "repro")
    assert "Running stage 'classifier_report'" in first
    second = run(dvc_bin, "repro")
    assert "Running stage" not in second and "up to date" in second
    shown = json.loads(run(dvc_bin, "metrics", "show", "--json"))
    metrics = next(iter(shown.values()))["data"]
    assert metrics["metrics/dataset.json"]["data"]["crops"]["all"]["total"] > 0
    for arch in ("resnet18", "mobilenet_v2"):
        for regime in ("scratch", "frozen", "finetune"):
            assert 0 <= metrics[f"metrics/classifier/{arch}-{regime}-s0.json"]["data"]["mCA"] <= 1
    for run_name in ("transfer", "scratch"):
        detector = metrics[f"metrics/detector/{run_name}.json"]["data"]
        assert 0 <= detector["best"]["Car"]["AP50"] <= 1 and detector["last"]["epoch"] == 2
    assert len(list((tmp_path / "plots/detector/pictures").glob("*.png"))) == 2
    assert (tmp_path / "reports/detector_table.md").read_text().count("| Yes |") == 4

    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    experiment = run(dvc_bin, "exp", "run", "-S", "classifier.train.lr=0.001")
    ran = set(re.findall(r"Running stage '([^@']+)", experiment))
    assert ran == {"train_classifier", "evaluate_classifier", "classifier_report"}
    diff = json.loads(run(dvc_bin, "metrics", "diff", "--json"))
    assert any(path.startswith("metrics/classifier/") for path in diff)

    run("git", "reset", "-q", "--hard")  # back to the baseline, then a detector knob
    run(dvc_bin, "checkout", "--force")
    experiment = run(dvc_bin, "exp", "run", "-S", "detector.train.lr=0.002")
    ran = set(re.findall(r"Running stage '([^@']+)", experiment))
    assert ran == {"train_detector", "evaluate_detector", "detector_report", "detection_pictures"}
