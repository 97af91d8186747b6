import numpy as np
import pytest
from PIL import Image

from kitti_pipeline.data.crops import DatasetError, crop_frame, list_frames
from kitti_pipeline.data.labels import LabelError

CLASSES = ("Car", "Person", "Cyclist")
OPTIONS = dict(
    image_size=16, resize="stretch", min_box_size=4.0, tolerance=0.01, on_bad_input="error"
)


def make_frames(root, frames: dict[str, str]):
    """A frames folder: 100x50 grey images with a red block at x 20..60, y 10..40."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for stem, labels in frames.items():
        pixels = np.full((50, 100, 3), 128, dtype=np.uint8)
        pixels[10:40, 20:60] = (255, 0, 0)
        Image.fromarray(pixels).save(root / "images" / f"{stem}.png")
        (root / "labels" / f"{stem}.txt").write_text(labels)
    return root


# The red block in normalised YOLO form: cx = 40/100, cy = 25/50, w = 40/100, h = 30/50.
BLOCK = "0 0.4 0.5 0.4 0.6\n"


def test_crop_of_a_known_block(tmp_path):
    frames, skips = list_frames(make_frames(tmp_path, {"a": BLOCK}), "error")
    crops, skipped = crop_frame(frames[0], CLASSES, **OPTIONS)
    assert skips == [] and skipped == []
    (crop,) = crops
    assert crop.box == pytest.approx((20.0, 10.0, 60.0, 40.0))
    assert (crop.name, crop.class_name, crop.frame, crop.line) == ("a_001.png", "Car", "a", 1)
    pixels = np.asarray(crop.image)
    assert pixels.shape == (16, 16, 3)
    assert (pixels == (255, 0, 0)).all()  # exactly the block, no grey border pulled in


def test_pad_mode_keeps_aspect_ratio(tmp_path):
    frames, _ = list_frames(make_frames(tmp_path, {"a": BLOCK}), "error")
    (crop,), _ = crop_frame(frames[0], CLASSES, **{**OPTIONS, "resize": "pad"})
    pixels = np.asarray(crop.image)
    # 40x30 scaled to 16x12, centred: 2 black rows above and below.
    assert (pixels[2:14] == (255, 0, 0)).all()
    assert (pixels[:2] == 0).all() and (pixels[14:] == 0).all()


def test_box_beyond_frame_is_clipped(tmp_path):
    # cx 0.95, w 0.2 -> x from 85 to 105 in a 100-wide frame: clipped to 85..100.
    frames, _ = list_frames(make_frames(tmp_path, {"a": "1 0.95 0.5 0.2 0.4\n"}), "error")
    (crop,), _ = crop_frame(frames[0], CLASSES, **OPTIONS)
    assert crop.box == pytest.approx((85.0, 15.0, 100.0, 35.0))
    assert crop.class_name == "Person"


def test_small_box_is_skipped_and_reported(tmp_path):
    # Second line: 3 px wide (0.03 * 100) < min_box_size 4.
    frames, _ = list_frames(make_frames(tmp_path, {"a": BLOCK + "2 0.8 0.5 0.03 0.5\n"}), "error")
    crops, skipped = crop_frame(frames[0], CLASSES, **OPTIONS)
    assert len(crops) == 1
    (skip,) = skipped
    assert (skip.reason, skip.line) == ("small_box", 2)
    assert skip.path.endswith("labels/a.txt")


def test_malformed_line_errors_with_file_and_line(tmp_path):
    frames, _ = list_frames(make_frames(tmp_path, {"a": BLOCK + "0 0.5 0.5 0.2\n"}), "error")
    with pytest.raises(LabelError, match=r"labels/a\.txt:2: expected 5 fields"):
        crop_frame(frames[0], CLASSES, **OPTIONS)


def test_malformed_line_is_counted_when_skipping(tmp_path):
    frames, _ = list_frames(make_frames(tmp_path, {"a": "0 0.5 0.5 0.2\n" + BLOCK}), "skip")
    crops, skipped = crop_frame(frames[0], CLASSES, **{**OPTIONS, "on_bad_input": "skip"})
    assert [c.line for c in crops] == [2]
    assert [(s.reason, s.line) for s in skipped] == [("bad_label", 1)]


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_label_without_image(tmp_path, mode):
    root = make_frames(tmp_path, {"a": BLOCK, "b": BLOCK})
    (root / "images" / "b.png").unlink()
    if mode == "error":
        with pytest.raises(DatasetError, match=r"labels/b\.txt: no image for frame 'b'"):
            list_frames(root, mode)
    else:
        frames, skips = list_frames(root, mode)
        assert [f.stem for f in frames] == ["a"]
        assert [(s.reason, s.path.endswith("labels/b.txt")) for s in skips] == [
            ("label_without_image", True)
        ]


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_image_without_label(tmp_path, mode):
    root = make_frames(tmp_path, {"a": BLOCK, "b": BLOCK})
    (root / "labels" / "a.txt").unlink()
    if mode == "error":
        with pytest.raises(DatasetError, match=r"images/a\.png: no label file for frame 'a'"):
            list_frames(root, mode)
    else:
        frames, skips = list_frames(root, mode)
        assert [f.stem for f in frames] == ["b"]
        assert [s.reason for s in skips] == ["image_without_label"]


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_unreadable_image(tmp_path, mode):
    root = make_frames(tmp_path, {"a": BLOCK})
    (root / "images" / "a.png").write_bytes(b"not a png at all")
    frames, _ = list_frames(root, mode)
    if mode == "error":
        with pytest.raises(DatasetError, match=r"images/a\.png: cannot read image"):
            crop_frame(frames[0], CLASSES, **OPTIONS)
    else:
        crops, skipped = crop_frame(frames[0], CLASSES, **{**OPTIONS, "on_bad_input": "skip"})
        assert crops == []
        assert [s.reason for s in skipped] == ["unreadable_image"]


def test_missing_labels_folder(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="no 'labels/' folder"):
        list_frames(tmp_path, "error")
