from collections import Counter

import numpy as np
from PIL import Image

from kitti_pipeline.core.params import load_params
from kitti_pipeline.data.boxes import normalise
from kitti_pipeline.data.labels import KITTI_CLASS_MAP, format_yolo_line, kitti_to_yolo
from kitti_pipeline.data.synthetic import render_frame, synthetic_frame

CLASSES = ("Car", "Person", "Cyclist")
MIX = {"Car": 0.78, "Person": 0.17, "Cyclist": 0.05}


def test_frame_is_deterministic_per_seed():
    a_img, a_obj = render_frame(np.random.default_rng([0, 3]), 1242, 375, 8.0, MIX)
    b_img, b_obj = render_frame(np.random.default_rng([0, 3]), 1242, 375, 8.0, MIX)
    c_img, _ = render_frame(np.random.default_rng([1, 3]), 1242, 375, 8.0, MIX)
    assert a_img.tobytes() == b_img.tobytes() and a_obj == b_obj
    assert a_img.tobytes() != c_img.tobytes()


def test_frames_have_kitti_geometry_and_valid_labels():
    counts = Counter()
    truncated = occluded = 0
    for i in range(40):
        image, objects = render_frame(np.random.default_rng([7, i]), 1242, 375, 8.0, MIX)
        assert image.size == (1242, 375) and image.mode == "RGB"
        for o in objects:
            x1, y1, x2, y2 = o.visible_box
            assert 0 <= x1 < x2 <= 1242 and 0 <= y1 < y2 <= 375
            truncated += o.truncated > 0
            occluded += o.occluded > 0
        counts.update(o.class_name for o in objects)
    share = {k: v / counts.total() for k, v in counts.items()}
    assert set(share) == set(CLASSES)
    assert 0.7 < share["Car"] < 0.95 and share["Cyclist"] < share["Person"]
    assert truncated > 0 and occluded > 0  # the hard cases exist


def test_kitti_labels_convert_to_the_same_yolo_labels():
    _, objects = render_frame(np.random.default_rng([0, 1]), 1242, 375, 8.0, MIX)
    yolo = [
        format_yolo_line(CLASSES.index(o.class_name), *normalise(o.visible_box, 1242, 375))
        for o in objects
    ]
    via_kitti, ignored, _ = kitti_to_yolo(
        [o.to_kitti() for o in objects], 1242, 375, CLASSES, KITTI_CLASS_MAP
    )
    assert via_kitti == yolo and not ignored


def test_stage_writes_every_frame_as_one_process_draws_it(stage, params_file, tmp_path):
    """The stage draws frames in several processes; each file holds what `synthetic_frame`
    draws for its index in this one, and no index is missing or extra."""
    stage("synthesize", "--params", params_file, "--out", tmp_path / "frames")
    params = load_params(params_file)
    cfg, classes = params.synthesize, params.data.classes
    stems = [f"{i:06d}" for i in range(cfg.frames)]
    for sub, suffix in (("images", ".png"), ("labels", ".txt"), ("label_2", ".txt")):
        assert sorted(p.name for p in (tmp_path / "frames" / sub).iterdir()) == [
            stem + suffix for stem in stems
        ]
    for i, stem in enumerate(stems):
        image, yolo, kitti = synthetic_frame(cfg, classes, i)
        written = np.asarray(Image.open(tmp_path / "frames" / "images" / f"{stem}.png"))
        assert np.array_equal(written, np.asarray(image))
        labels = (tmp_path / "frames" / "labels" / f"{stem}.txt").read_text()
        assert labels == "".join(line + "\n" for line in yolo)
        label_2 = (tmp_path / "frames" / "label_2" / f"{stem}.txt").read_text()
        assert label_2 == "".join(line + "\n" for line in kitti)
