import pytest
import torch
from torchvision.ops import box_convert

from kitti_pipeline.data.boxes import clip, denormalise, intersection_area, normalise


def test_denormalise_centred_box_by_hand():
    # 1242x375 frame, box centred, 20% wide and 40% high:
    # x1 = 1242 * (0.5 - 0.1) = 496.8, x2 = 1242 * 0.6 = 745.2,
    # y1 = 375 * (0.5 - 0.2) = 112.5, y2 = 375 * 0.7 = 262.5
    assert denormalise(0.5, 0.5, 0.2, 0.4, 1242, 375) == pytest.approx((496.8, 112.5, 745.2, 262.5))


def test_denormalise_off_centre_box_by_hand_and_not_the_misprinted_formula():
    # 200x100 frame, cx 0.25, cy 0.6, w 0.1, h 0.2:
    # x1 = 200 * (0.25 - 0.05) = 40, y1 = 100 * (0.6 - 0.1) = 50, x2 = 60, y2 = 70
    box = denormalise(0.25, 0.6, 0.1, 0.2, 200, 100)
    assert box == pytest.approx((40.0, 50.0, 60.0, 70.0))
    # The study's write-up prints x1 = w * ((xn - wn) / 2):
    # 200 * 0.15 / 2 = 15 and y1 = 100 * 0.4 / 2 = 20, not the 40 and 50 above.
    misprinted = (200 * ((0.25 - 0.1) / 2), 100 * ((0.6 - 0.2) / 2))
    assert (box[0], box[1]) != pytest.approx(misprinted)


def test_denormalise_matches_torchvision_box_convert():
    g = torch.Generator().manual_seed(0)
    cxcywh = torch.rand(50, 4, generator=g, dtype=torch.float64)
    width, height = 1242, 375
    expected = box_convert(cxcywh * torch.tensor([width, height, width, height]), "cxcywh", "xyxy")
    ours = torch.tensor(
        [denormalise(*b.tolist(), width, height) for b in cxcywh], dtype=torch.float64
    )
    torch.testing.assert_close(ours, expected)


def test_normalise_inverts_denormalise():
    assert normalise(denormalise(0.3, 0.7, 0.2, 0.1, 640, 480), 640, 480) == pytest.approx(
        (0.3, 0.7, 0.2, 0.1)
    )


def test_clip_to_frame_by_hand():
    assert clip((-10.0, 5.0, 120.0, 130.0), 100, 50) == (0.0, 5.0, 100.0, 50.0)


def test_intersection_area_by_hand():
    # (0,0)-(10,10) and (5,5)-(20,20) overlap in a 5x5 square.
    assert intersection_area((0, 0, 10, 10), (5, 5, 20, 20)) == 25
    assert intersection_area((0, 0, 10, 10), (11, 11, 20, 20)) == 0
