"""dvc.yaml runs every arm of the study, and the scratch arms depend on no starting weights."""

import typing

import yaml

from kitti_pipeline.core.params import (
    CONTROL,
    DETECTOR_RUNS,
    REGIMES,
    ClassifierParams,
    DetectorParams,
)

from .conftest import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def regimes_named_by(params: type) -> list[str]:
    """The regimes a params section's `regimes` list may name."""
    return list(typing.get_args(typing.get_args(typing.get_type_hints(params)["regimes"])[0]))


def test_the_stages_run_every_arm_of_the_study():
    # The params choose which regimes from the init weights run; scratch always runs.
    assert STAGES["train_classifier"]["matrix"]["regime"] == "${classifier.regimes}"
    assert sorted(["scratch", *regimes_named_by(ClassifierParams)]) == sorted(REGIMES)
    assert "--regime scratch" in STAGES["train_classifier_scratch"]["cmd"]
    assert f"--regime {CONTROL} " in STAGES["train_classifier_control"]["cmd"]
    # One process scores every (arch, arm, seed) run the three training matrices make.
    assert {"classifier.archs", "classifier.seeds"} <= set(STAGES["evaluate_classifier"]["params"])
    assert "models/classifier" in STAGES["evaluate_classifier"]["deps"]
    assert sorted(["scratch", *regimes_named_by(DetectorParams)]) == sorted(DETECTOR_RUNS)
    runs = {"run": "${detector.regimes}", "seed": "${detector.seeds}"}
    assert STAGES["train_detector"]["matrix"] == STAGES["evaluate_detector"]["matrix"] == runs
    assert "--run-name ${item.run} --seed ${item.seed} " in STAGES["train_detector"]["cmd"]
    for name in ("train_detector_scratch", "evaluate_detector_scratch"):
        assert STAGES[name]["matrix"] == {"seed": "${detector.seeds}"}
    assert "--run-name scratch --seed ${item.seed} " in STAGES["train_detector_scratch"]["cmd"]
    assert "models/detector/scratch-s${item.seed}" in STAGES["evaluate_detector_scratch"]["deps"]


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
        ("train_detector", "models/detector/init.weights"),
    ):
        assert init in STAGES[name]["deps"], name
