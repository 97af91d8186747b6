import math

import pytest
import torch
from torchvision.ops import box_iou, nms

from kitti_pipeline.detect.yolo import Scale, decode, detect, overlaps_any, yolo_loss

from .reference_yolo import yolo_loss_loop

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


# Three scales of YOLOv3 at 128 px (4, 8 and 16 cells), with its anchors.
YOLOV3 = [
    Scale(((116, 90), (156, 198), (373, 326)), 32),
    Scale(((30, 61), (62, 45), (59, 119)), 16),
    Scale(((10, 13), (16, 30), (33, 23)), 8),
]


def test_predictions_inside_a_dont_care_region_are_not_punished_and_it_is_no_object():
    """A DontCare region (class -1) over the bottom-left cell holds two of its three anchor
    boxes wholly (10 x 13 and 30 x 30 at (16, 48)); the 60 x 40 one lies 1024 / 2400 = 0.43
    inside, under 0.5. Those two leave noobj, 11 -> 9 predictions; the region takes no anchor,
    so the object terms are the one-box case's."""
    region = torch.tensor([[-1.0, 0.0, 32.0, 32.0, 64.0]])
    with_region = [torch.cat([TARGET[0], region])]
    loss = yolo_loss([zero_map()], [SCALE], with_region, num_classes=1, dont_care=True)
    assert loss["noobj"].item() == pytest.approx(9 * LOG2)
    one_box = yolo_loss([zero_map()], [SCALE], TARGET, num_classes=1)
    for term in ("xy", "wh", "obj", "cls"):
        assert loss[term].item() == pytest.approx(one_box[term].item()), term
    alone = yolo_loss([zero_map()], [SCALE], [region], num_classes=1, dont_care=True)
    assert alone["obj"].item() == 0 and alone["noobj"].item() == pytest.approx(10 * LOG2)
    # Without the hint the region is still no object, and spares nothing.
    unhinted = yolo_loss([zero_map()], [SCALE], with_region, num_classes=1)
    assert unhinted["noobj"].item() == pytest.approx(11 * LOG2)
    assert unhinted["obj"].item() == pytest.approx(one_box["obj"].item())


def random_batch(per_frame, classes=3, size=128, seed=0):
    """Raw maps and boxes of a batch of 6 frames: some empty, some with half as many boxes, and
    in each frame with two or more boxes, a second box on the first's cell and anchor."""
    g = torch.Generator().manual_seed(seed)
    raws = [
        torch.randn(6, 3 * (5 + classes), size // s.stride, size // s.stride, generator=g)
        .mul(2)
        .requires_grad_()
        for s in YOLOV3
    ]
    targets = []
    for frame in range(6):
        k = (0, per_frame, per_frame // 2, per_frame, 1, per_frame)[frame]
        xy = torch.rand(k, 2, generator=g) * (size - 40)
        wh = torch.rand(k, 2, generator=g) * 60 + 3
        t = torch.cat([torch.randint(0, classes, (k, 1), generator=g).float(), xy, xy + wh], 1)
        if k >= 2:  # the same box, shifted by a pixel and of another class: same cell and anchor
            t[1, 1:] = t[0, 1:] + 1
            t[1, 0] = (t[0, 0] + 1) % classes
        targets.append(t)
    return raws, targets


@pytest.mark.parametrize("box_loss", ["mse", "giou"])
@pytest.mark.parametrize("per_frame", [0, 1, 2, 8, 40])
def test_the_batched_loss_equals_the_loop_over_ground_truths(per_frame, box_loss):
    raws, targets = random_batch(per_frame)
    for ignore_iou in (0.5, 0.1):
        expected = yolo_loss_loop(raws, YOLOV3, targets, 3, ignore_iou, box_loss)
        got = yolo_loss(raws, YOLOV3, targets, 3, ignore_iou, box_loss)
        assert set(got) == set(expected)
        for name, value in expected.items():
            torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-5, msg=name)
        grads = torch.autograd.grad(got["total"], raws)
        for grad, reference in zip(
            grads, torch.autograd.grad(expected["total"], raws), strict=True
        ):
            torch.testing.assert_close(grad, reference, rtol=1e-5, atol=1e-6)


def test_two_boxes_on_one_cell_and_anchor_both_count_and_objectness_once():
    """The rule for a shared cell and anchor: each box adds its xy, wh and class terms;
    the prediction's objectness is counted once (Darknet lets the last box overwrite)."""
    second = torch.tensor([[0.0, 27.0, 6.0, 55.0, 36.0]])  # centre (41, 21): same cell, anchor
    both = [torch.cat([TARGET[0], second])]
    one = yolo_loss([zero_map()], [SCALE], TARGET, num_classes=1)
    two = yolo_loss([zero_map()], [SCALE], both, num_classes=1)
    # xy of the second: offsets (41/32 - 1, 21/32) = (0.28125, 0.65625) from sigmoid(0) = 0.5.
    extra_xy = (0.5 - 0.28125) ** 2 + (0.5 - 0.65625) ** 2
    assert two["xy"].item() == pytest.approx(one["xy"].item() + extra_xy)
    assert two["wh"].item() == pytest.approx(2 * one["wh"].item())  # the same size, 28 x 30
    assert two["cls"].item() == pytest.approx(2 * LOG2)
    assert two["obj"].item() == pytest.approx(LOG2)
    for loss in (yolo_loss, yolo_loss_loop):
        assert loss([zero_map()], [SCALE], both, 1)["total"].item() == pytest.approx(
            two["total"].item()
        )


def test_overlaps_any_is_torchvisions_box_iou_above_the_threshold():
    g = torch.Generator().manual_seed(3)
    a = torch.rand(4, 300, 2, generator=g) * 50
    b = torch.rand(4, 5, 2, generator=g) * 50
    a = torch.cat([a, a + torch.rand(4, 300, 2, generator=g) * 40 + 1], -1)
    b = torch.cat([b, b + torch.rand(4, 5, 2, generator=g) * 40 + 1], -1)
    real = torch.rand(4, 5, generator=g) < 0.7
    for threshold in (0.1, 0.3, 0.5):
        got = overlaps_any(a, b, real, threshold)
        for image in range(4):
            iou = box_iou(a[image], b[image])[:, real[image]]
            expected = (iou > threshold).any(1) if iou.shape[1] else torch.zeros(300, dtype=bool)
            assert torch.equal(got[image], expected)
        assert got.any() and not got.all()
