"""Profiles applied to params.yaml: values set, comments kept, bad profiles refused."""

import shutil

import pytest
import yaml

from kitti_pipeline.core.params import ParamsError, load_params
from kitti_pipeline.core.profiles import (
    apply_profile,
    describe_profile,
    merge_overrides,
    read_profile,
)

from .conftest import ROOT


@pytest.fixture
def params_copy(tmp_path):
    """params.yaml and profiles/ copied to a working tree of their own."""
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    return path


def test_the_demo_profile_is_what_params_yaml_holds(params_copy):
    assert apply_profile("demo", params_copy) == []
    assert yaml.safe_load(params_copy.read_text()) == yaml.safe_load(
        (ROOT / "params.yaml").read_text()
    )


def test_study_profile_then_demo_profile(params_copy):
    changed = apply_profile("study", params_copy)
    assert "detector.cfg" in changed and "classifier.train.epochs" in changed
    params = load_params(params_copy)
    assert params.data.frames == "data/kitti_subset"
    assert (params.crop.image_size, params.split.train_crops) == (128, 1500)
    assert (params.classifier.train.lr, params.classifier.train.batch_size) == (1e-4, 8)
    assert params.classifier.train.epochs == 20 and params.classifier.init.source == "imagenet"
    assert params.detector.cfg == "cfg/yolov3.cfg" and params.detector.init.source == "darknet"
    assert (params.detector.train.epochs, params.detector.train.eval_every) == (200, 5)
    text = params_copy.read_text()
    assert "# study: 128" in text and "image_size: 128" in text  # comments survive
    assert "test_crops: null" in text  # nulls stay spelt out
    assert describe_profile(yaml.safe_load(text)) == "study"

    apply_profile("demo", params_copy)
    assert yaml.safe_load(params_copy.read_text()) == yaml.safe_load(
        (ROOT / "params.yaml").read_text()
    )


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ("crop:\n  imag_size: 128\n", "unknown key 'crop.imag_size'"),
        ("crop:\n  image_size: big\n", "'crop.image_size' must be int"),
        ("classifier:\n  archs: [resnet18, vgg16]\n", "'classifier.archs[1]' must be one of"),
    ],
)
def test_a_bad_profile_is_refused_and_params_stay(params_copy, tmp_path, profile, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(profile)
    before = params_copy.read_text()
    with pytest.raises(ParamsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        apply_profile(bad, params_copy)
    assert params_copy.read_text() == before


def test_describe_names_the_closest_profile_and_what_changed(params_copy):
    raw = yaml.safe_load(params_copy.read_text())
    assert describe_profile(raw) == "demo"
    raw["classifier"]["train"]["lr"] = 0.001
    assert describe_profile(raw) == "demo with classifier.train.lr changed"
    # ci does not set the learning rate; the demo's value is its value.
    apply_profile("ci", params_copy)
    raw = yaml.safe_load(params_copy.read_text())
    assert describe_profile(raw) == "ci"
    raw["classifier"]["train"]["lr"] = 0.001
    assert describe_profile(raw) == "ci with classifier.train.lr changed"


def test_demo_profile_lists_every_key_another_profile_sets():
    demo = read_profile("demo", ROOT / "profiles")
    for name in ("study", "ci", "real"):
        merge_overrides(demo, read_profile(name, ROOT / "profiles"))  # raises on a missing key


@pytest.mark.parametrize("profile", ["study", "real", "ci"])
def test_a_profile_then_demo_gives_params_yaml_back_byte_for_byte(params_copy, profile):
    """Not only the same values: the comments and the flow style of lists and mappings too,
    so that `git diff params.yaml` is empty after going back."""
    apply_profile(profile, params_copy)
    apply_profile("demo", params_copy)
    assert params_copy.read_text() == (ROOT / "params.yaml").read_text()


def test_profiles_are_read_from_the_working_tree(params_copy, monkeypatch):
    """The profiles beside params.yaml, not those of the installed package's folder."""
    local = params_copy.parent / "profiles" / "study.yaml"
    local.write_text(local.read_text().replace("epochs: 200", "epochs: 7"))
    apply_profile("study", params_copy)
    assert load_params(params_copy).detector.train.epochs == 7
    monkeypatch.chdir(params_copy.parent)
    assert describe_profile(yaml.safe_load(params_copy.read_text())) == "study"
    (params_copy.parent / "profiles" / "mine.yaml").write_text("crop:\n  image_size: 96\n")
    apply_profile("mine", params_copy)
    assert load_params(params_copy).crop.image_size == 96


def test_a_profile_gives_the_same_params_whatever_came_before(params_copy, tmp_path):
    apply_profile("study", params_copy)
    study = yaml.safe_load(params_copy.read_text())
    for before in ("ci", "demo", "study"):
        shutil.copy(ROOT / "params.yaml", params_copy)
        apply_profile(before, params_copy)
        apply_profile("study", params_copy)
        assert yaml.safe_load(params_copy.read_text()) == study, f"{before} then study"
        assert describe_profile(yaml.safe_load(params_copy.read_text())) == "study"
    apply_profile("ci", params_copy)
    apply_profile("demo", params_copy)
    assert yaml.safe_load(params_copy.read_text()) == yaml.safe_load(
        (ROOT / "params.yaml").read_text()
    )


def test_the_real_profile_sets_the_real_files_and_goes_back(params_copy):
    """`kitti-profile real`: kitti-subset's folder, the study's 128-px crops and 20 classifier
    epochs, MobileNetV2 from its ImageNet file, yolov3-tiny from COCO with its car head; then
    `demo` gives the demo's params back."""
    apply_profile("real", params_copy)
    raw = yaml.safe_load(params_copy.read_text())
    assert raw["data"]["frames"] == "data/kitti_subset" and raw["crop"]["image_size"] == 128
    assert raw["classifier"]["init"]["source"] == {
        "resnet18": "synthetic",
        "mobilenet_v2": "imagenet",
    }
    assert raw["classifier"]["train"]["epochs"] == 20
    assert raw["classifier"]["train"]["head_epochs"] == 200
    assert raw["detector"]["init"]["weights"] == "yolov3-tiny.weights"
    assert raw["detector"]["init"]["head_classes"] == [2]
    assert describe_profile(raw) == "real"
    apply_profile("demo", params_copy)
    assert yaml.safe_load(params_copy.read_text()) == yaml.safe_load(
        (ROOT / "params.yaml").read_text()
    )
