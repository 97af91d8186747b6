"""The training rules that follow Darknet, each against values worked out from its C source.

pjreddie/darknet: `src/image.c` `letterbox_image` (fill 0.5, image centred), `src/yolo_layer.c`
`delta_yolo_box` (coordinate deltas scaled by 2 - w*h) and `forward_yolo_layer` (no objectness
delta above `ignore_thresh`), `src/network.c` `get_current_rate` (burn-in lr * (batch /
burn_in) ^ power, power 4 by default), and the head carried over from a COCO file's car rows.
"""

import dataclasses
import math

import pytest
import torch

from kitti_pipeline.core.params import load_params
from kitti_pipeline.detect.darknet import (
    build_darknet,
    transfer_weights,
    write_weights,
)
from kitti_pipeline.detect.data import DARKNET_FILL, letterbox
from kitti_pipeline.detect.optim import burn_in_lr
from kitti_pipeline.detect.train import fit_detector
from kitti_pipeline.detect.yolo import Scale, scales_of, yolo_loss
from kitti_pipeline.pretrain.coco import make_object_scenes

from .conftest import ROOT
from .test_yolo_loss import LOG2, SCALE, TARGET, zero_map

TINY = ROOT / "cfg/yolov3-tiny.cfg"


def test_the_letterbox_fills_with_darknets_grey_and_centres_the_image():
    # Darknet fills with 0.5 on [0, 1]: 127.5 on [0, 255], rounded half up to the uint8 128,
    # 0.502 as the network sees it.
    assert DARKNET_FILL == 128 and abs(DARKNET_FILL / 255 - 0.5) < 0.5 / 255 + 1e-12
    image = torch.full((3, 50, 100), 7, dtype=torch.uint8)
    # 100 x 50 into 64 x 64: scale 0.64, 64 x 32, placed at (64 - 32) // 2 = 16 rows down.
    boxed, _, transform = letterbox(image, torch.zeros(0, 4), 64)
    assert transform == (0.64, 0.64, 0.0, 16.0)
    assert (boxed[:, :16] == 128).all() and (boxed[:, 48:] == 128).all()
    assert (boxed[:, 16:48] == 7).all()
    other, _, _ = letterbox(image, torch.zeros(0, 4), 64, fill=114)
    assert (other[:, :16] == 114).all()


def test_small_box_scale_weights_the_box_terms_by_two_minus_w_h():
    plain = yolo_loss([zero_map()], [SCALE], TARGET, num_classes=1)
    scaled = yolo_loss([zero_map()], [SCALE], TARGET, num_classes=1, small_box_scale=True)
    # The 28 x 30 box in the 64 x 64 input: w * h = 840 / 4096 = 0.205078125.
    weight = 2 - 840 / 4096
    xy = (0.5 - 0.25) ** 2 + (0.5 - 0.625) ** 2
    assert scaled["xy"].item() == pytest.approx(weight * xy)
    assert scaled["wh"].item() == pytest.approx(weight * math.log(28 / 30) ** 2)
    for term in ("obj", "noobj", "cls"):
        assert scaled[term].item() == pytest.approx(plain[term].item())
    giou = yolo_loss(
        [zero_map()], [SCALE], TARGET, num_classes=1, box_loss="giou", small_box_scale=True
    )
    plain_giou = yolo_loss([zero_map()], [SCALE], TARGET, num_classes=1, box_loss="giou")
    assert giou["giou"].item() == pytest.approx(weight * plain_giou["giou"].item())


def test_the_burn_in_is_darknets_fourth_power():
    # Darknet's k-th update (k = step + 1) takes lr * (k / burn_in) ^ 4 while k < burn_in.
    assert burn_in_lr(0.001, 0, 1000, 4) == pytest.approx(0.001 * 1e-12)
    assert burn_in_lr(0.001, 499, 1000, 4) == pytest.approx(0.001 * 0.0625)
    assert burn_in_lr(0.001, 998, 1000, 4) == pytest.approx(0.001 * 0.999**4)
    assert burn_in_lr(0.001, 999, 1000, 4) == 0.001
    assert burn_in_lr(0.001, 4, 10, 1) == pytest.approx(0.0005)  # linear with power 1
    assert burn_in_lr(0.001, 0, 0, 4) == 0.001  # no burn-in


def test_the_cfg_gives_burn_in_and_ignore_thresh():
    model = build_darknet(TINY, 1)
    assert model.burn_in == 1000
    assert [s.ignore_iou for s in scales_of(model)] == [0.7, 0.7]


def test_each_scale_ignores_above_its_own_threshold_unless_overridden():
    # The best-overlapping prediction has IoU 0.35 with the ground truth (test_yolo_loss): a
    # scale whose cfg says 0.3 spares it, and an explicit 0.5 punishes it again.
    own = Scale(SCALE.anchors, SCALE.stride, ignore_iou=0.3)
    assert yolo_loss([zero_map()], [own], TARGET, 1)["noobj"].item() == pytest.approx(10 * LOG2)
    override = yolo_loss([zero_map()], [own], TARGET, 1, ignore_iou=0.5)
    assert override["noobj"].item() == pytest.approx(11 * LOG2)


def test_a_carried_head_takes_box_objectness_and_the_chosen_class_rows(tmp_path):
    torch.manual_seed(0)
    coco = build_darknet(TINY, 80)
    for conv in coco.convolutions():
        torch.nn.init.normal_(conv.conv.weight)
        if conv.conv.bias is not None:
            torch.nn.init.normal_(conv.conv.bias)
    write_weights(coco, tmp_path / "coco.weights")
    model = build_darknet(TINY, 1)
    info = transfer_weights(model, tmp_path / "coco.weights", TINY, 80, head_classes=(2,))
    assert info["carried_head"] == [9, 12] and info["reinitialised"] == []
    assert info["loaded"] == 13
    for k in (9, 12):
        theirs, mine = coco.convolutions()[k].conv, model.convolutions()[k].conv
        # Per anchor a: rows 85a .. 85a+4 (box, objectness) and 85a + 5 + 2 (car) -> 6a .. 6a+5.
        for a in range(3):
            for r in range(5):
                assert torch.equal(mine.weight[6 * a + r], theirs.weight[85 * a + r])
            assert torch.equal(mine.weight[6 * a + 5], theirs.weight[85 * a + 7])
            assert mine.bias[6 * a + 5] == theirs.bias[85 * a + 7]
    fresh = build_darknet(TINY, 1)
    info = transfer_weights(fresh, tmp_path / "coco.weights", TINY, 80)
    assert info["reinitialised"] == [9, 12] and info["carried_head"] == []


def test_a_carried_head_needs_one_file_class_per_class_and_the_files_anchors(tmp_path):
    write_weights(build_darknet(TINY, 80), tmp_path / "coco.weights")
    with pytest.raises(ValueError, match="gives 2 file classes for a detector of 1"):
        transfer_weights(build_darknet(TINY, 1), tmp_path / "coco.weights", TINY, 80, None, (2, 3))
    with pytest.raises(ValueError, match="each must be a class of the file, 0 to 79"):
        transfer_weights(build_darknet(TINY, 1), tmp_path / "coco.weights", TINY, 80, None, (80,))
    other = tmp_path / "other.cfg"
    other.write_text(TINY.read_text().replace("37,58", "40,60"))
    with pytest.raises(ValueError, match="use detector.anchors: cfg"):
        transfer_weights(build_darknet(other, 1), tmp_path / "coco.weights", TINY, 80, None, (2,))


def test_warmup_cfg_burns_in_over_the_cfgs_burn_in(params_file):
    """`warmup_steps: cfg` takes the cfg's `burn_in` (1000): after two steps the learning rate
    is Darknet's for its second update, lr * (2 / 1000) ^ 4."""
    data = make_object_scenes(4, 64, seed=0)
    cfg = dataclasses.replace(
        load_params(params_file).detector.train,
        epochs=1,
        eval_every=1,
        batch_size=2,
        warmup_steps="cfg",
        warmup_power=4,
        lr=0.001,
    )
    states = []
    torch.manual_seed(0)
    model = build_darknet(ROOT / "cfg/yolov3-tiny-small.cfg", 10)
    fit_detector(model, data, data, cfg, 0.45, on_eval=states.append)
    assert [s["epoch"] for s in states] == [0, 1]
    lrs = [g["lr"] for g in states[-1]["optimizer"]["param_groups"]]
    assert lrs == pytest.approx([0.001 * (2 / 1000) ** 4] * len(lrs))
