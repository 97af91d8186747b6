"""Two real KITTI frames (tests/data/kitti_sample) through kitti-subset, crop and kitti-detect.

Expected values are worked out here from the `label_2` lines: YOLO `cx = (x1 + x2) / 2 / W`,
`cy = (y1 + y2) / 2 / H`, `w = (x2 - x1) / W`, `h = (y2 - y1) / H`, and crops back at the KITTI
pixel boxes. Frame 000000 is 1224x370, not KITTI's usual 1242x375, and both PNGs are palette-mode.
"""

import csv
import json

import pytest
import torch
from PIL import Image

from kitti_pipeline.data.subset import main as kitti_subset
from kitti_pipeline.detect.darknet import build_darknet, init_prediction_biases
from kitti_pipeline.detect.data import DONT_CARE, load_detection_set
from kitti_pipeline.detect.model_files import save_detector
from kitti_pipeline.detect.predict import main as kitti_detect

from .conftest import ROOT

SAMPLE = ROOT / "tests" / "data" / "kitti_sample" / "training"
SIZES = {"000000": (1224, 370), "000007": (1242, 375)}
# label_2 boxes (x1, y1, x2, y2) of the classes the study keeps, in file order, with class ids
# 0 Car, 1 Person (KITTI's Pedestrian), 2 Cyclist; DontCare is left out and counted.
OBJECTS = {
    "000000": [(1, (712.40, 143.00, 810.73, 307.92))],
    "000007": [
        (0, (564.62, 174.59, 616.43, 224.74)),
        (0, (481.59, 180.09, 512.55, 202.42)),
        (0, (542.05, 175.55, 565.27, 193.79)),
        (2, (330.60, 176.09, 355.61, 213.60)),
    ],
}

DONT_CARE_BOXES = [(753.33, 164.32, 798.00, 186.74), (738.50, 171.32, 753.27, 184.42)]  # 000007


@pytest.fixture
def subset(tmp_path):
    kitti_subset(["--training", str(SAMPLE), "--out", str(tmp_path / "subset"), "--frames", "2"])
    return tmp_path / "subset"


def test_kitti_subset_writes_the_study_labels(subset):
    for stem, objects in OBJECTS.items():
        width, height = SIZES[stem]
        lines = (subset / "labels" / f"{stem}.txt").read_text().splitlines()
        assert len(lines) == len(objects)
        for line, (class_id, (x1, y1, x2, y2)) in zip(lines, objects, strict=True):
            fields = line.split()
            assert int(fields[0]) == class_id
            expected = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height)
            expected += ((x2 - x1) / width, (y2 - y1) / height)
            assert [float(v) for v in fields[1:]] == pytest.approx(expected, abs=5e-7)
    info = json.loads((subset / "subset.json").read_text())
    assert info["frames"] == ["000000", "000007"] and info["ignored"] == {"DontCare": 2}
    assert (subset / "classes.txt").read_text() == "Car\nPerson\nCyclist\n"


def test_crops_land_on_the_kitti_boxes(subset, stage, params_file, tmp_path):
    stage("crop", "--params", params_file, "--frames", subset, "--out", tmp_path / "crops")
    with open(tmp_path / "crops" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    expected = [(s, k, box) for s, objects in OBJECTS.items() for k, box in objects]
    assert len(rows) == len(expected) == 5
    for row, (stem, class_id, box) in zip(rows, expected, strict=True):
        assert (row["frame"], int(row["class_id"])) == (stem, class_id)
        got = [float(row[k]) for k in ("x1", "y1", "x2", "y2")]
        assert got == pytest.approx(box, abs=0.01)  # 6 decimals of a 1242-px side: < 1e-3 px
        with Image.open(tmp_path / "crops" / row["crop"]) as crop:
            assert crop.mode == "RGB" and crop.size == (32, 32)


def test_kitti_detect_on_real_frames(subset, tmp_path):
    torch.manual_seed(0)
    model = build_darknet(ROOT / "cfg" / "yolov3-tiny-small.cfg", 1)
    init_prediction_biases(model, objectness_prior=0.3)
    info = {"classes": ["Car"], "img_size": 128, "letterbox_fill": 128, "epoch": 1}
    save_detector(
        tmp_path / "best.pt", model, (ROOT / "cfg" / "yolov3-tiny-small.cfg").read_text(), info
    )
    out = tmp_path / "out"
    kitti_detect(
        [
            str(subset / "images"),
            "--model",
            str(tmp_path / "best.pt"),
            "--out",
            str(out),
            "--conf",
            "0.05",
        ]
    )
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000007.png", "detections.csv"]
    with open(out / "detections.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["image"].rsplit("/", 1)[-1] for r in rows} == {"000000.png", "000007.png"}
    for row in rows:
        width, height = SIZES[row["image"].rsplit("/", 1)[-1][:-4]]
        x1, y1, x2, y2 = (float(row[k]) for k in ("x1", "y1", "x2", "y2"))
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


def test_dont_care_regions_join_the_detector_targets_letterboxed(subset):
    """Frame 000007's two DontCare lines become target rows of class -1, letterboxed as the
    cars are: scale 416 / 1242, and 1242 x 375 scaled to 416 x 126 sits (416 - 126) // 2 = 145
    rows down."""
    data = load_detection_set(subset, ["000000", "000007"], 3, (0,), 416)
    regions = {
        stem: t[t[:, 0] == DONT_CARE, 1:] for stem, t in zip(data.stems, data.targets, strict=True)
    }
    assert len(regions["000000"]) == 0
    scale, top = 126 / 375, 145
    expected = [
        v
        for x1, y1, x2, y2 in DONT_CARE_BOXES
        for v in (x1 * 416 / 1242, y1 * scale + top, x2 * 416 / 1242, y2 * scale + top)
    ]
    assert regions["000007"].flatten().tolist() == pytest.approx(expected, abs=1e-3)
    cars = data.targets[1][data.targets[1][:, 0] == 0]
    assert len(cars) == 3  # the cars are still the only objects
    assert data.dont_care and data.select(slice(0, 1)).dont_care
