import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from kitti_pipeline.detect.augment import augmentation
from kitti_pipeline.detect.data import letterbox, load_frame, unletterbox


def test_letterbox_a_kitti_frame_by_hand():
    image = torch.zeros(3, 375, 1242, dtype=torch.uint8)
    boxes = torch.tensor([[100.0, 50.0, 300.0, 150.0]])
    out, moved, (sx, sy, left, top) = letterbox(image, boxes, 416)
    # Longer side 1242 -> 416; 375 * 416 / 1242 = 125.6 -> 126 rows, padded (416 - 126) // 2 = 145
    # above. x scales by 416 / 1242, y by 126 / 375.
    assert out.shape == (3, 416, 416)
    assert (sx, sy, left, top) == (416 / 1242, 126 / 375, 0.0, 145.0)
    expected = [100 * 416 / 1242, 50 * 126 / 375 + 145, 300 * 416 / 1242, 150 * 126 / 375 + 145]
    assert moved[0].tolist() == pytest.approx(expected, abs=1e-4)
    assert (out[:, :145] == 128).all() and (out[:, 145 + 126 :] == 128).all()
    back = unletterbox(moved, (sx, sy, left, top), 1242, 375)
    assert back[0].tolist() == pytest.approx([100.0, 50.0, 300.0, 150.0], abs=1e-3)


def test_letterbox_a_kitti_frame_to_a_rectangle_by_hand():
    image = torch.zeros(3, 375, 1242, dtype=torch.uint8)
    # The second car is 25 px tall, KITTI's moderate limit.
    boxes = torch.tensor([[100.0, 50.0, 300.0, 150.0], [600.0, 200.0, 640.0, 225.0]])
    out, moved, (sx, sy, left, top) = letterbox(image, boxes, (736, 224))
    # min(736 / 1242, 224 / 375) = 736 / 1242: all 736 columns, 375 * 736 / 1242 = 222.2 -> 222
    # rows, padded (224 - 222) // 2 = 1 above and 1 below.
    assert out.shape == (3, 224, 736)
    assert (sx, sy, left, top) == (736 / 1242, 222 / 375, 0.0, 1.0)
    assert (out[:, :1] == 128).all() and (out[:, 223:] == 128).all()
    assert float(moved[1, 3] - moved[1, 1]) == pytest.approx(25 * 222 / 375, abs=1e-4)  # 14.8 px
    _, square, _ = letterbox(image, boxes, 416)
    assert float(square[1, 3] - square[1, 1]) == pytest.approx(25 * 126 / 375, abs=1e-4)  # 8.4 px
    back = unletterbox(moved, (sx, sy, left, top), 1242, 375)
    assert back.flatten().tolist() == pytest.approx(boxes.flatten().tolist(), abs=1e-3)


def test_letterbox_a_tall_frame_to_a_wide_rectangle_pads_the_sides():
    image = torch.zeros(3, 300, 200, dtype=torch.uint8)
    boxes = torch.tensor([[10.0, 20.0, 190.0, 280.0]])
    out, moved, (sx, sy, left, top) = letterbox(image, boxes, (256, 128))
    # min(256 / 200, 128 / 300) = 128 / 300: 300 -> 128 rows, 200 * 128 / 300 = 85.3 -> 85
    # columns, padded (256 - 85) // 2 = 85 on the left, 86 on the right.
    assert out.shape == (3, 128, 256)
    assert (sx, sy, left, top) == (85 / 200, 128 / 300, 85.0, 0.0)
    assert (out[:, :, :85] == 128).all() and (out[:, :, 85 + 85 :] == 128).all()
    back = unletterbox(moved, (sx, sy, left, top), 200, 300)
    assert back.flatten().tolist() == pytest.approx(boxes.flatten().tolist(), abs=1e-3)


@pytest.mark.parametrize(
    ("size", "message"),
    [((736, 100), "multiple of 32"), ((736, 224, 3), r"a side or \[width, height\]")],
)
def test_a_rectangle_must_be_two_multiples_of_32(size, message):
    with pytest.raises(ValueError, match=message):
        letterbox(torch.zeros(3, 10, 10, dtype=torch.uint8), torch.zeros(0, 4), size)


def test_size_must_be_a_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32"):
        letterbox(torch.zeros(3, 10, 10, dtype=torch.uint8), torch.zeros(0, 4), 100)


def test_augmentation_keeps_boxes_on_their_objects():
    # A red block on grey; after flips, scaling and shifts the box must still frame red pixels.
    image = torch.full((3, 128, 128), 120, dtype=torch.uint8)
    image[:, 40:80, 20:60] = torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1, 1)
    boxes = tv_tensors.BoundingBoxes(
        [[20.0, 40.0, 60.0, 80.0]], format="XYXY", canvas_size=(128, 128)
    )
    transform = augmentation(flip=True, scale=0.3, translate=0.1, colour=0.0)
    torch.manual_seed(0)
    flipped = 0
    for _ in range(20):
        img, bb, labels = transform(tv_tensors.Image(image), boxes, torch.tensor([0]))
        assert len(bb) == len(labels) == 1
        x1, y1, x2, y2 = (int(round(v)) for v in bb[0].tolist())
        inside = img[:, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].float()
        assert inside[0].mean() > 250 and inside[1].mean() < 5, (x1, y1, x2, y2)
        flipped += x1 > 64
    assert 0 < flipped < 20  # some flipped, some not


def test_load_frame_keeps_cars_only(tmp_path):
    Image.new("RGB", (200, 100)).save(tmp_path / "f.png")
    (tmp_path / "f.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.1 0.1\n0 0.95 0.5 0.2 0.2\n")
    image, boxes, classes = load_frame(tmp_path / "f.png", tmp_path / "f.txt", 3, keep=(0,))
    assert image.shape == (3, 100, 200)
    # Second car: x from 170 to 210, clipped to 200.
    assert boxes.tolist() == [[80.0, 30.0, 120.0, 70.0], [170.0, 40.0, 200.0, 60.0]]
    assert classes.tolist() == [0, 0]
    np.testing.assert_array_equal(
        load_frame(tmp_path / "f.png", tmp_path / "f.txt", 3, keep=(1,))[2].numpy(), [0]
    )
