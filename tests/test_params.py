import pytest
import yaml

from kitti_pipeline.core.params import ParamsError, load_params

from .conftest import ROOT


def write(tmp_path, raw):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_repo_params_load_with_types():
    params = load_params(ROOT / "params.yaml")
    assert params.data.classes == ("Car", "Person", "Cyclist")
    assert params.split.test_crops is None
    assert isinstance(params.synthesize.objects_per_frame, float)
    assert sum(params.synthesize.class_mix.values()) == pytest.approx(1.0)


def test_unknown_key_is_named(tmp_path, raw):
    raw["crop"]["imag_size"] = 64
    with pytest.raises(ParamsError, match=r"unknown key 'crop\.imag_size'"):
        load_params(write(tmp_path, raw))


def test_unknown_section_is_named(tmp_path, raw):
    raw["cropp"] = {}
    with pytest.raises(ParamsError, match=r"unknown key 'cropp'"):
        load_params(write(tmp_path, raw))


def test_missing_key_is_named(tmp_path, raw):
    del raw["split"]["seed"]
    with pytest.raises(ParamsError, match=r"missing key 'split\.seed'"):
        load_params(write(tmp_path, raw))


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("synthesize", "frames", "ten", r"'synthesize\.frames' must be int"),
        ("synthesize", "frames", True, r"'synthesize\.frames' must be int"),
        ("synthesize", "frames", 2.5, r"'synthesize\.frames' must be int"),
        ("crop", "resize", "squash", r"'crop\.resize' must be one of \['stretch', 'pad'\]"),
        ("data", "classes", "Car", r"'data\.classes' must be a list"),
        ("synthesize", "class_mix", {"Car": "most"}, r"'synthesize\.class_mix\.Car' must be float"),
        ("synthesize", "kitti_labels", "yes", r"'synthesize\.kitti_labels' must be bool"),
    ],
)
def test_wrong_type_is_named(tmp_path, raw, section, key, value, message):
    raw[section][key] = value
    with pytest.raises(ParamsError, match=message):
        load_params(write(tmp_path, raw))


def test_the_detector_input_is_a_side_or_width_and_height(tmp_path, raw):
    raw["detector"]["img_size"] = [736, 224]
    assert load_params(write(tmp_path, raw)).detector.img_size == (736, 224)
    for bad in ([736], [736, 224, 3], "big", [736.5, 224]):
        raw["detector"]["img_size"] = bad
        with pytest.raises(ParamsError, match=r"'detector\.img_size' must be int or list of 2"):
            load_params(write(tmp_path, raw))


def test_int_is_accepted_for_float(tmp_path, raw):
    raw["crop"]["min_box_size"] = 12
    assert load_params(write(tmp_path, raw)).crop.min_box_size == 12.0


def test_error_names_the_file(tmp_path, raw):
    raw["split"]["seed"] = "x"
    with pytest.raises(ParamsError, match=r"params\.yaml: 'split\.seed'"):
        load_params(write(tmp_path, raw))
