import csv

import torch
from PIL import Image

from kitti_pipeline.detect.darknet import build_darknet, init_prediction_biases
from kitti_pipeline.detect.data import letterbox, unletterbox
from kitti_pipeline.detect.model_files import save_detector
from kitti_pipeline.detect.predict import detect_frames, main, read_image
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
    assert len(found) == len(expected) > 0
    assert torch.allclose(found, expected, atol=1e-3)


def test_kitti_detect_command(tmp_path):
    model = random_detector()
    save_detector(
        tmp_path / "best.pt",
        model,
        SMALL.read_text(),
        {"classes": ["Car"], "img_size": 128, "epoch": 5},
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
