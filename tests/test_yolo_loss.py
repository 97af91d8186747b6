import math

import pytest
import torch
from torchvision.ops import box_iou, nms

from kitti_pipeline.detect.yolo import Scale, decode, detect, yolo_loss

# One 64x64 input, one scale with a 2x2 grid (stride 32) and three anchors, one class.
SCALE = Scale(anchors=((10, 13), (30, 30), (60, 40)), stride=32)
# Ground truth centred at (40, 20), 28 x 30: [26, 5, 54, 35]. Best anchor by shape IoU: (30, 30)
# (28*30 / 900 = 0.933, against 130/840 and 840/2400). Its cell: column 40 // 32 = 1, row 0.
TARGET = [torch.tensor([[0.0, 26.0, 5.0, 54.0, 35.0]])]
LOG2 = math.log(2)


def zero_map():
    return torch.zeros(1, 3 * 6, 2, 2, requires_grad=True)


def test_decode_of_a_zero_map_puts_anchors_at_cell_centres():
    boxes = decode(torch.zeros(1, 18, 2, 2), SCALE)  # (B, A, H, W, 4)
    # sigmoid(0) = 0.5: the centre of cell (row 0, column 1) is (48, 16).
    assert boxes[0, 1, 0, 1].tolist() == [33.0, 1.0, 63.0, 31.0]
    assert boxes[0, 2, 1, 0].tolist() == [-14.0, 28.0, 46.0, 68.0]


def test_each_term_on_a_one_box_case_by_hand():
    loss = yolo_loss([zero_map()], [SCALE], TARGET, num_classes=1)
    # xy: offset in cell (40/32 - 1, 20/32 - 0) = (0.25, 0.625); sigmoid(0) = 0.5.
    assert loss["xy"].item() == pytest.approx((0.5 - 0.25) ** 2 + (0.5 - 0.625) ** 2)
    # wh: targets log(28/30) and log(30/30) = 0; predictions 0.
    assert loss["wh"].item() == pytest.approx(math.log(28 / 30) ** 2)
    # obj: BCE(logit 0, 1) = log 2; cls: BCE(logit 0, 1) = log 2 for the single class.
    assert loss["obj"].item() == pytest.approx(LOG2)
    assert loss["cls"].item() == pytest.approx(LOG2)
    # noobj: the other 11 predictions; none overlaps the ground truth by more than 0.5
    # (the best, anchor (60, 40) at (48, 16), has IoU 840/2400 = 0.35): 11 * BCE(0, 0).
    assert loss["noobj"].item() == pytest.approx(11 * LOG2)
    assert loss["total"].item() == pytest.approx(
        sum(loss[k].item() for k in ("xy", "wh", "obj", "noobj", "cls"))
    )


def test_predictions_overlapping_a_ground_truth_are_ignored_for_noobj():
    # Lower the threshold to 0.3: anchor (60, 40) at (48, 16) (IoU 0.35) is no longer punished.
    loss = yolo_loss([zero_map()], [SCALE], TARGET, num_classes=1, ignore_iou=0.3)
    assert loss["noobj"].item() == pytest.approx(10 * LOG2)


def test_giou_replaces_the_squared_errors():
    loss = yolo_loss([zero_map()], [SCALE], TARGET, num_classes=1, box_loss="giou")
    assert "xy" not in loss and "wh" not in loss
    # Predicted [33, 1, 63, 31] vs [26, 5, 54, 35]: intersection 21 * 26 = 546,
    # union 900 + 840 - 546 = 1194, enclosing box [26, 1, 63, 35] = 37 * 34 = 1258.
    giou = 546 / 1194 - (1258 - 1194) / 1258
    assert loss["giou"].item() == pytest.approx(1 - giou, rel=1e-5)


def test_gradient_pushes_the_assigned_prediction_towards_the_box():
    raw = zero_map()
    yolo_loss([raw], [SCALE], TARGET, num_classes=1)["total"].backward()
    cell = raw.grad.view(1, 3, 6, 2, 2)[0, 1, :, 0, 1]  # anchor 1, row 0, column 1
    assert cell[0] > 0 and cell[1] < 0  # tx should fall (0.5 -> 0.25), ty rise (-> 0.625)
    assert cell[4] < 0  # objectness should rise


def test_empty_image_has_only_noobj_loss():
    loss = yolo_loss([zero_map()], [SCALE], [torch.zeros(0, 5)], num_classes=1)
    assert loss["noobj"].item() == pytest.approx(12 * LOG2)
    assert loss["xy"].item() == loss["obj"].item() == loss["cls"].item() == 0


def test_detect_thresholds_and_matches_torchvision_nms():
    torch.manual_seed(0)
    raw = torch.randn(1, 18, 2, 2)
    (dets,) = detect([raw], [SCALE], conf_threshold=0.1, nms_iou=0.45)
    boxes = decode(raw, SCALE).reshape(-1, 4)
    p = raw.view(1, 3, 6, 2, 2).permute(0, 1, 3, 4, 2).reshape(-1, 6)
    scores = p[:, 4].sigmoid() * p[:, 5].sigmoid()
    keep = scores > 0.1
    expected = nms(boxes[keep], scores[keep], 0.45)
    torch.testing.assert_close(dets[:, :4], boxes[keep][expected])
    torch.testing.assert_close(dets[:, 4], scores[keep][expected])
    assert (box_iou(dets[:, :4], dets[:, :4]).triu(1) <= 0.45).all()
