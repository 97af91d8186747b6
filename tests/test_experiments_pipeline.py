"""`kitti-diff` and `kitti-grid` under DVC on the `ci` profile: two committed revisions diffed
against the slow reference, and a grid of two variants queued, run and collected."""

import csv
import json
import os
import shutil
import sys

import numpy as np
import pytest
import yaml

from kitti_pipeline.experiments.diff import Side

from .conftest import ROOT, copy_project, project_runner
from .test_kitti_diff import reference

pytestmark = pytest.mark.slow
RESAMPLES = 40


def side_from_checkout(repo, name) -> Side:
    """A revision's runs read from its checkout (git checkout, dvc checkout), file by file."""
    classes = ("Car", "Person", "Cyclist")
    with open(repo / "data/split.csv") as f:
        tests = [r for r in csv.DictReader(f) if r["split"] == "test"]
    side = Side(name, classes, crop_frames=[r["frame"] for r in tests])
    for path in sorted((repo / "plots/classifier/predictions").glob("*.csv")):
        arch, regime, seed = path.stem.rsplit("-", 2)
        with open(path) as f:
            rows = list(csv.DictReader(f))
        side.classifier.setdefault((arch, regime), {})[int(seed[1:])] = tuple(
            np.array([classes.index(r[c]) for r in rows]) for c in ("actual", "predicted")
        )
    for path in sorted((repo / "data/detector_matches").glob("*.json")):
        run, seed = path.stem.rsplit("-", 1)
        data = json.loads(path.read_text())
        side.detector_frames = data["stems"]
        side.detector.setdefault(run, {})[int(seed[1:])] = data["best"]
    return side


def test_diff_of_two_revisions_then_a_grid_of_two_variants(tmp_path):
    repo = tmp_path / "repo"
    copy_project(repo)
    run = project_runner(repo)
    bin_dir = os.path.dirname(sys.executable)
    run(os.path.join(bin_dir, "kitti-profile"), "ci")
    run("git", "init", "-q")
    run("dvc", "init", "-q")
    shutil.copytree(ROOT / ".dvc/plots", repo / ".dvc/plots")
    run("dvc", "repro")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    first = run("git", "rev-parse", "HEAD").strip()

    # A second revision: label smoothing on the classifiers, a batch of 4 for the detector.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["classifier"]["train"]["label_smoothing"] = 0.2
    params["detector"]["train"]["batch_size"] = 4
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("dvc", "repro")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "second")
    second = run("git", "rev-parse", "HEAD").strip()

    printed = json.loads(
        run(os.path.join(bin_dir, "kitti-diff"), first, second, "--json", "--resamples", "40")
    )
    sides = []
    for rev in (first, second):
        run("git", "checkout", "-q", rev)
        run("dvc", "checkout", "-q")
        sides.append(side_from_checkout(repo, rev))
    run("git", "checkout", "-q", "master")
    run("dvc", "checkout", "-q")
    expected = reference(*sides, RESAMPLES)
    got = {(r["run"], r["figure"]): r for r in printed["rows"]}
    assert printed["classifier_paired"] and printed["detector_paired"]
    assert set(expected) < set(got)  # and KITTI's moderate AP, not in the reference
    assert {f for _, f in set(got) - set(expected)} == {"kitti_AP40_moderate"}
    for key, (a, b, low, high) in expected.items():
        row = got[key]
        assert (row["a"], row["b"], row["low"], row["high"]) == pytest.approx(
            (a, b, low, high), abs=1e-12
        ), key
    assert any(r["difference"] != 0 for r in printed["rows"])
    md = run(os.path.join(bin_dir, "kitti-diff"), first, "HEAD", "--md", "--resamples", "40")
    assert md.count("\n| ") == len(printed["rows"]) + 1

    # The grid: two variants queued on HEAD, run, collected.
    (repo / "grid.yaml").write_text(
        "variants:\n"
        "  balance-loss:\n    classifier.train.balance: loss\n"
        "  detector-lr-step:\n    detector.train.schedule: step\n"
    )
    out = run(
        os.path.join(bin_dir, "kitti-grid"), "run", "grid.yaml", "-j", "1", "--resamples", "40"
    )
    assert "| balance-loss | resnet18 scratch |" in out
    collected = json.loads((repo / "experiments/results/grid.json").read_text())
    assert collected["baseline"] == run("git", "rev-parse", "HEAD").strip()
    loss = collected["variants"]["balance-loss"]["rows"]
    assert {r["study"] for r in loss} == {"classifier"}
    assert {r["figure"] for r in loss} >= {"mCA", "acc_Cyclist"}
    step = collected["variants"]["detector-lr-step"]["rows"]
    assert {r["run"] for r in step} == {"transfer", "scratch"}
    # The collected differences are kitti-diff's between the baseline and each experiment.
    direct = json.loads(
        run(
            os.path.join(bin_dir, "kitti-diff"),
            "HEAD",
            "balance-loss",
            "--json",
            "--resamples",
            "40",
        )
    )
    assert [r for r in direct["rows"] if r["study"] == "classifier"] == loss
