import csv

import torch
from PIL import Image

from kitti_pipeline.detect.commands import detect_main as main
from kitti_pipeline.detect.darknet import build_darknet, init_prediction_biases
from kitti_pipeline.detect.data import letterbox, unletterbox
from kitti_pipeline.detect.model_files import save_detector
from kitti_pipeline.detect.predict import detect_frames, read_image
from kitti_pipeline.detect.yolo import detect, scales_of

from .conftest import ROOT

SMALL = ROOT / "cfg" / "yolov3-tiny-small.cfg"


def random_detector():
    torch.manual_seed(0)
    model = build_darknet(SMALL, 1)
    init_prediction_biases(model, objectness_prior=0.3)  # plenty of boxes to compare
    return model.eval()


def test_detections_come_back_in_frame_pixels():
    model = random_detector()
    frame = torch.randint(0, 256, (3, 150, 400), dtype=torch.uint8)
    found = detect_frames(model, [frame], 128, 0.05, 0.45)[0]
    # The same by hand: letterbox, the unfused model, decode, NMS, map back.
    boxed, _, transform = letterbox(frame, torch.zeros(0, 4), 128)
    with torch.no_grad():
        raw = model(boxed[None].float() / 255)
    expected = detect(raw, scales_of(model), 0.05, 0.45)[0]
    expected[:, :4] = unletterbox(expected[:, :4], transform, 400, 150)
    expected = expected[(expected[:, 2] > expected[:, 0]) & (expected[:, 3] > expected[:, 1])]
    assert len(found) == len(expected) > 0
    assert torch.allclose(found, expected, atol=1e-3)


def test_boxes_wholly_in_the_letterbox_padding_are_left_out():
    model = random_detector()
    frame = torch.randint(0, 256, (3, 100, 400), dtype=torch.uint8)  # 128: 32 rows, 48 padding
    boxed, _, transform = letterbox(frame, torch.zeros(0, 4), 128)
    with torch.no_grad():
        raw = model(boxed[None].float() / 255)
    every = detect(raw, scales_of(model), 0.001, 0.45)[0]
    top, bottom = transform[3], transform[3] + 100 * transform[1]
    in_padding = (every[:, 3] <= top) | (every[:, 1] >= bottom)
    assert in_padding.sum() > 0  # the untrained model does put boxes there
    found = detect_frames(model, [frame], 128, 0.001, 0.45)[0]
    assert len(found) == (~in_padding).sum() > 0
    assert (found[:, 0] >= 0).all() and (found[:, 2] <= 400).all()
    assert (found[:, 1] >= 0).all() and (found[:, 3] <= 100).all()
    assert ((found[:, 2] > found[:, 0]) & (found[:, 3] > found[:, 1])).all()


def test_kitti_detect_command(tmp_path):
    model = random_detector()
    save_detector(
        tmp_path / "best.pt",
        model,
        SMALL.read_text(),
        {"classes": ["Car"], "img_size": 128, "letterbox_fill": 128, "epoch": 5},
    )
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.jpg"):
        Image.effect_noise((300, 100), 60).convert("RGB").save(images / name)
    main(
        [
            str(images),
            "--model",
            str(tmp_path / "best.pt"),
            "--out",
            str(tmp_path / "out"),
            "--conf",
            "0.05",
        ]
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.png",
        "b.png",
        "detections.csv",
    ]
    with open(tmp_path / "out" / "detections.csv") as f:
        rows = list(csv.DictReader(f))
    counts = [
        len(detect_frames(model, [read_image(images / n)], 128, 0.05, 0.45)[0])
        for n in ("a.png", "b.jpg")
    ]
    assert len(rows) == sum(counts) > 0
    assert all(r["class"] == "Car" and 0 <= float(r["x1"]) <= float(r["x2"]) <= 300 for r in rows)
