"""dvc.yaml runs every arm of the study, and the scratch arms depend on no starting weights."""

import yaml

from kitti_pipeline.core.params import CONTROL, DETECTOR_RUNS, REGIMES

from .conftest import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_the_stages_run_every_arm_of_the_study():
    transfer = STAGES["train_classifier"]["matrix"]["regime"]
    assert sorted(["scratch", *transfer]) == sorted(REGIMES)
    assert "--regime scratch" in STAGES["train_classifier_scratch"]["cmd"]
    assert f"--regime {CONTROL} " in STAGES["train_classifier_control"]["cmd"]
    # One process scores every (arch, arm, seed) run the three training matrices make.
    assert {"classifier.archs", "classifier.seeds"} <= set(STAGES["evaluate_classifier"]["params"])
    assert "models/classifier" in STAGES["evaluate_classifier"]["deps"]
    assert STAGES["evaluate_detector"]["matrix"]["run"] == list(DETECTOR_RUNS)
    for run in DETECTOR_RUNS:
        stage = STAGES[f"train_detector_{run}"]
        assert f"--run-name {run} --seed ${{item.seed}} " in stage["cmd"]
        assert stage["matrix"] == {"seed": "${detector.seeds}"}
    assert STAGES["evaluate_detector"]["matrix"]["seed"] == "${detector.seeds}"


def test_scratch_runs_depend_on_no_starting_weights():
    """A new transfer source (`classifier.init`, `detector.init`, their files) must not rerun
    the scratch arms: 200 YOLOv3 epochs at study scale."""
    for name, init in (
        ("train_classifier_scratch", "models/init/"),
        ("train_detector_scratch", "models/detector/init.weights"),
    ):
        stage = STAGES[name]
        assert not any(init in dep or "init.json" in dep for dep in stage["deps"]), name
        assert "--init" not in stage["cmd"], name
        assert not any(".init" in p for p in stage["params"]), name
    # The control draws its random backbone from the init seed, and reads no init file.
    control = STAGES["train_classifier_control"]
    assert (
        not any("models/init/" in dep for dep in control["deps"]) and "--init" not in control["cmd"]
    )
    assert [p for p in control["params"] if ".init" in p] == ["classifier.init.seed"]
    for name, init in (
        ("train_classifier", "models/init/${item.arch}.pt"),
        ("train_detector_transfer", "models/detector/init.weights"),
    ):
        assert init in STAGES[name]["deps"], name
