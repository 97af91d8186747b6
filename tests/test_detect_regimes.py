"""What each detector run trains (`detect.regimes`), read from the weights before and after.

yolov3-tiny's cfg (and the small copy the tests build) numbers its layers 0 conv, 1 maxpool,
2 conv, ..., 12 conv, 13 conv, 14 conv, 15 conv (the first prediction conv), 16 yolo, 17 route,
18 conv, 19 upsample, 20 route, 21 conv, 22 conv (the second prediction conv), 23 yolo: by hand,
the layers with weights are 0, 2, 4, 6, 8, 10, 12, 13, 14, 15, 18, 21 and 22.
"""

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from kitti_pipeline.core.params import load_params
from kitti_pipeline.detect.darknet import build_darknet
from kitti_pipeline.detect.regimes import Phase, frozen_layers, training_phases
from kitti_pipeline.detect.train import fit_detector
from kitti_pipeline.detect.yolo import Scale, yolo_loss
from kitti_pipeline.pretrain.coco import make_object_scenes

from .conftest import ROOT

SMALL = ROOT / "cfg" / "yolov3-tiny-small.cfg"
WEIGHTED = {0, 2, 4, 6, 8, 10, 12, 13, 14, 15, 18, 21, 22}
PREDICTION = {15, 22}


@pytest.fixture(scope="module")
def cfg():
    return dataclasses.replace(
        load_params(ROOT / "params.yaml").detector.train,
        lr=1e-2,
        epochs=2,
        head_epochs=1,
        finetune_lr=1e-3,
        eval_every=1,
        batch_size=2,
        warmup_steps=1,
    )


def pretrained():
    """The small detector with BatchNorm statistics that are not the defaults, as a pretrained
    file's are."""
    torch.manual_seed(0)
    model = build_darknet(SMALL, 10)
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, 64, 64) * 2)
    return model


def layer_states(state: dict) -> dict[int, list[torch.Tensor]]:
    """Each layer's tensors (weights and BatchNorm statistics) of a state dict."""
    out: dict[int, list[torch.Tensor]] = {}
    for name, value in state.items():
        if name.startswith("layers.") and "num_batches_tracked" not in name:
            out.setdefault(int(name.split(".")[1]), []).append(value)
    return out


def changed_layers(before: dict, after: dict) -> set[int]:
    """The layers any of whose tensors differ between two state dicts."""
    a, b = layer_states(before), layer_states(after)
    return {i for i in a if any(not torch.equal(x, y) for x, y in zip(a[i], b[i], strict=True))}


def train(run: str, cfg) -> tuple[dict, dict[int, dict], list[dict]]:
    """The starting state, the state after each evaluated epoch, and the history of `run`."""
    data = make_object_scenes(4, 64, seed=0)
    model = pretrained()
    start = copy.deepcopy(model.state_dict())
    states = {}
    history, _ = fit_detector(
        model,
        data,
        data,
        cfg,
        0.45,
        on_eval=lambda s: states.update({s["epoch"]: copy.deepcopy(s["model"])}),
        run=run,
    )
    return start, states, history


def test_the_frozen_layers_by_default_are_all_but_the_prediction_convs():
    model = build_darknet(SMALL, 1)
    assert frozen_layers(model, None) == WEIGHTED - PREDICTION
    assert frozen_layers(model, 13) == set(range(13))  # 0 to 12: the backbone up to its 1024
    with pytest.raises(ValueError, match="frozen_layers 23 freezes every layer with weights"):
        frozen_layers(model, 23)


def test_each_run_is_its_phases(cfg):
    model = build_darknet(SMALL, 1)
    head = frozenset(WEIGHTED - PREDICTION)
    assert training_phases("transfer", cfg, model) == [Phase(1, 2, frozenset(), 1e-2)]
    assert training_phases("scratch", cfg, model) == [Phase(1, 2, frozenset(), 1e-2)]
    assert training_phases("frozen", cfg, model) == [Phase(1, 1, head, 1e-2)]
    assert training_phases("lpft", cfg, model) == [
        Phase(1, 1, head, 1e-2),
        Phase(2, 3, frozenset(), 1e-3),  # head_epochs, then `epochs` more at finetune_lr
    ]
    head_lr = dataclasses.replace(cfg, head_lr=1e-4)
    assert training_phases("frozen", head_lr, model) == [Phase(1, 1, head, 1e-4)]
    assert training_phases("lpft", head_lr, model)[0] == Phase(1, 1, head, 1e-4)
    assert training_phases("zeroshot", cfg, model) == []
    with pytest.raises(ValueError, match="Invalid run 'probe'"):
        training_phases("probe", cfg, model)


@pytest.mark.slow
def test_the_frozen_run_trains_only_the_prediction_convs(cfg):
    start, states, history = train("frozen", cfg)
    assert [row["epoch"] for row in history] == [0, 1]
    # The frozen layers keep their weights and their BatchNorm statistics.
    assert changed_layers(start, states[1]) == PREDICTION


@pytest.mark.slow
def test_lpft_trains_the_prediction_convs_then_every_layer(cfg):
    start, states, history = train("lpft", cfg)
    assert [row["epoch"] for row in history] == [0, 1, 2, 3]
    assert changed_layers(start, states[1]) == PREDICTION
    assert changed_layers(states[1], states[3]) == WEIGHTED


@pytest.mark.slow
def test_transfer_trains_every_layer_and_freeze_bn_keeps_the_statistics(cfg):
    start, states, _ = train("transfer", cfg)
    assert changed_layers(start, states[1]) == WEIGHTED
    start, states, _ = train("transfer", dataclasses.replace(cfg, freeze_bn=True))
    assert changed_layers(start, states[2]) == WEIGHTED
    statistics = [k for k in start if k.endswith(("running_mean", "running_var"))]
    assert statistics and all(torch.equal(start[k], states[2][k]) for k in statistics)
    # Scratch has no statistics worth keeping: it updates them whatever freeze_bn says.
    start, states, _ = train("scratch", dataclasses.replace(cfg, freeze_bn=True))
    assert all(not torch.equal(start[k], states[1][k]) for k in statistics)


@pytest.mark.slow
def test_zeroshot_trains_nothing(cfg):
    start, states, history = train("zeroshot", cfg)
    assert [row["epoch"] for row in history] == [0]
    assert changed_layers(start, states[0]) == set()


def test_darknet_box_loss_takes_xy_by_cross_entropy_on_the_logit():
    """One ground truth, one anchor, a 1 x 1 map of stride 32: the box (8, 12, 24, 28) has its
    centre (16, 20) at offsets (0.5, 0.625) in the cell and is 16 x 16, the anchor's shape, so
    wh's target is log 1 = 0. With logits tx = 1, ty = -1, tw = 0.5, th = 0, by hand:
    xy = BCE(1, 0.5) + BCE(-1, 0.625), wh = 0.5^2; and the gradient on tx is sigmoid(1) - 0.5,
    Darknet's delta."""
    raw = torch.zeros(1, 6, 1, 1)
    raw[0, :4, 0, 0] = torch.tensor([1.0, -1.0, 0.5, 0.0])
    raw.requires_grad_(True)
    scale = Scale(anchors=((16.0, 16.0),), stride=32)
    target = [torch.tensor([[0.0, 8.0, 12.0, 24.0, 28.0]])]
    terms = yolo_loss([raw], [scale], target, 1, box_loss="darknet")

    def bce(x, t):
        return -(t * F.logsigmoid(torch.tensor(x)) + (1 - t) * F.logsigmoid(-torch.tensor(x)))

    assert terms["xy"].item() == pytest.approx((bce(1.0, 0.5) + bce(-1.0, 0.625)).item())
    assert terms["wh"].item() == pytest.approx(0.25)
    terms["xy"].backward()
    sigmoid_1 = 1 / (1 + torch.exp(torch.tensor(-1.0)))
    assert raw.grad[0, 0, 0, 0].item() == pytest.approx((sigmoid_1 - 0.5).item())
