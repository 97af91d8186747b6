import copy

import pytest
import torch

from kitti_pipeline.classify.model_files import (
    classifier_provenance,
    load_classifier,
    save_classifier,
)
from kitti_pipeline.classify.models import (
    HEAD_KEYS,
    backbone,
    build_classifier,
    count_parameters,
    head,
    load_backbone,
    replace_head,
    set_train_mode,
    trainable_parameters,
)

ARCHS = ["resnet18", "mobilenet_v2"]
FEATURES = {"resnet18": 512, "mobilenet_v2": 1280}
# Trainable parameters of the 3-class head: in_features * 3 + 3.
HEAD_PARAMS = {"resnet18": 512 * 3 + 3, "mobilenet_v2": 1280 * 3 + 3}
# torchvision's 1000-class counts (11,689,512 and 3,504,872) with the 1000-way head swapped
# for a 3-way one: minus (F + 1) * 1000, plus (F + 1) * 3.
TOTAL_PARAMS = {"resnet18": 11_689_512 - 513 * 997, "mobilenet_v2": 3_504_872 - 1281 * 997}


@pytest.mark.parametrize("arch", ARCHS)
def test_head_replacement(arch):
    model = build_classifier(arch, 1000)
    replace_head(model, 3)
    weight_key, bias_key = HEAD_KEYS[arch]
    state = model.state_dict()
    assert state[weight_key].shape == (3, FEATURES[arch])
    assert state[bias_key].shape == (3,)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == (2, 3)
    torch.testing.assert_close(head(model)(backbone(model)(x)), model(x))


@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_counts(arch):
    model = build_classifier(arch, 3)
    trainable_parameters(model, "frozen")
    assert count_parameters(model) == (HEAD_PARAMS[arch], TOTAL_PARAMS[arch])
    trainable_parameters(model, "finetune")
    assert count_parameters(model) == (TOTAL_PARAMS[arch], TOTAL_PARAMS[arch])


def _one_step(model, regime):
    params = trainable_parameters(model, regime)
    optimizer = torch.optim.Adam(params, lr=1e-2)
    set_train_mode(model, regime)
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 0])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    return params


@pytest.mark.parametrize("arch", ARCHS)
def test_frozen_step_changes_only_the_head_and_keeps_batchnorm_statistics(arch):
    torch.manual_seed(0)
    model = build_classifier(arch, 3)
    before = copy.deepcopy(model.state_dict())
    params = _one_step(model, "frozen")
    head_ids = {id(p) for p in head(model).parameters()}
    assert {id(p) for p in params} == head_ids  # the optimizer gets the head only
    head_names = set(HEAD_KEYS[arch])
    for name, value in model.state_dict().items():
        if name in head_names:
            assert not torch.equal(value, before[name]), name
        else:  # backbone weights and BatchNorm running_mean/var/num_batches_tracked
            assert torch.equal(value, before[name]), name


@pytest.mark.parametrize("arch", ARCHS)
def test_finetune_step_changes_backbone_and_batchnorm_statistics(arch):
    torch.manual_seed(0)
    model = build_classifier(arch, 3)
    before = copy.deepcopy(model.state_dict())
    _one_step(model, "finetune")
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert any(k.endswith("running_mean") for k in changed)
    assert any(k.endswith("conv1.weight") or k.startswith("features.0.0") for k in changed)


@pytest.mark.parametrize("arch", ARCHS)
def test_load_backbone_from_a_local_file(arch, tmp_path):
    torch.manual_seed(1)
    source = build_classifier(arch, 10)  # a pretrained model with another head size
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    state = torch.load(tmp_path / "weights.pt", weights_only=True)
    target = build_classifier(arch, 3)
    load_backbone(target, arch, state, origin="weights.pt")
    for name, value in target.state_dict().items():
        if name not in HEAD_KEYS[arch]:
            assert torch.equal(value, source.state_dict()[name]), name


def test_load_backbone_names_shape_mismatches_and_missing_keys():
    state = build_classifier("resnet18", 3).state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    del state["layer1.0.bn1.bias"]
    with pytest.raises(
        ValueError,
        match=r"w\.pt does not fit resnet18: 1 missing keys "
        r"\['layer1\.0\.bn1\.bias'\].*conv1\.weight: expected \(64, 3, 7, 7\)",
    ):
        load_backbone(build_classifier("resnet18", 3), "resnet18", state, origin="w.pt")
    other = build_classifier("mobilenet_v2", 3).state_dict()
    with pytest.raises(ValueError, match="does not fit resnet18"):
        load_backbone(build_classifier("resnet18", 3), "resnet18", other, origin="m.pt")


def test_invalid_names_raise():
    with pytest.raises(ValueError, match="Invalid architecture 'vgg16'"):
        build_classifier("vgg16", 3)
    with pytest.raises(ValueError, match="Invalid regime 'partial'"):
        trainable_parameters(build_classifier("resnet18", 3), "partial")


def test_a_model_file_round_trips_and_refuses_other_classes(tmp_path):
    torch.manual_seed(0)
    model = build_classifier("mobilenet_v2", 3)
    fields = {
        "arch": "mobilenet_v2",
        "regime": "scratch",
        "seed": 0,
        "classes": ["a", "b", "c"],
        "image_size": 32,
        "trainable_params": 10,
        "total_params": 10,
    }
    save_classifier(tmp_path / "m.pt", model, fields)
    loaded, record = load_classifier(tmp_path / "m.pt", ("a", "b", "c"))
    assert record == fields
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    with pytest.raises(
        ValueError, match=r"m\.pt was trained on \['a', 'b', 'c'\], not \['a', 'b'\]"
    ):
        load_classifier(tmp_path / "m.pt", ("a", "b"))
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt: not a classifier model file"):
        load_classifier(tmp_path / "other.pt", ("a", "b", "c"))


def test_equal_weights_give_a_byte_equal_model_file_whatever_the_provenance(tmp_path):
    torch.manual_seed(0)
    model = build_classifier("resnet18", 3)
    fields = {
        "arch": "resnet18",
        "regime": "finetune",
        "seed": 1,
        "classes": ["a", "b", "c"],
        "image_size": 32,
        "trainable_params": 10,
        "total_params": 10,
        "history": [{"epoch": 1}],
    }
    runs = [
        {**fields, "train_seconds": 1.5, "code_version": "abc+src.1", "device": "cpu"},
        {**fields, "train_seconds": 9.0, "code_version": "def+src.2", "device": "cuda"},
    ]
    for i, record in enumerate(runs):
        save_classifier(tmp_path / f"{i}.pt", model, record)
    assert (tmp_path / "0.pt").read_bytes() == (tmp_path / "1.pt").read_bytes()
    # The provenance keeps what the model file leaves out, and names the run.
    assert classifier_provenance(runs[1]) == {
        "arch": "resnet18",
        "regime": "finetune",
        "seed": 1,
        "train_seconds": 9.0,
        "code_version": "def+src.2",
        "device": "cuda",
    }
