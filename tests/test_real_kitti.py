"""Three real KITTI frames (tests/data/kitti_sample) through kitti-subset, crop and kitti-detect.

Expected values are worked out here from the `label_2` lines: YOLO `cx = (x1 + x2) / 2 / W`,
`cy = (y1 + y2) / 2 / H`, `w = (x2 - x1) / W`, `h = (y2 - y1) / H`, and crops back at the KITTI
pixel boxes. Frame 000000 is 1224x370, not KITTI's usual 1242x375; all three PNGs are RGB, as
KITTI ships them. Frame 000021 holds a Cyclist cut by the frame's right edge, a Van and two
DontCare regions.
"""

import csv
import json

import pytest
import torch
from PIL import Image

from kitti_pipeline.data.labels import ignored_kitti_types
from kitti_pipeline.data.subset import main as kitti_subset
from kitti_pipeline.detect.commands import detect_main as kitti_detect
from kitti_pipeline.detect.darknet import build_darknet, init_prediction_biases
from kitti_pipeline.detect.data import DONT_CARE, load_detection_set, load_split
from kitti_pipeline.detect.model_files import save_detector

from .conftest import ROOT

SAMPLE = ROOT / "tests" / "data" / "kitti_sample" / "training"
SIZES = {"000000": (1224, 370), "000007": (1242, 375), "000021": (1242, 375)}
# label_2 boxes (x1, y1, x2, y2) of the classes the study keeps, in file order, with class ids
# 0 Car, 1 Person (KITTI's Pedestrian), 2 Cyclist; Van and DontCare are left out and counted.
OBJECTS = {
    "000000": [(1, (712.40, 143.00, 810.73, 307.92))],
    "000007": [
        (0, (564.62, 174.59, 616.43, 224.74)),
        (0, (481.59, 180.09, 512.55, 202.42)),
        (0, (542.05, 175.55, 565.27, 193.79)),
        (2, (330.60, 176.09, 355.61, 213.60)),
    ],
    "000021": [
        (2, (1056.16, 190.50, 1241.00, 374.00)),
        (0, (359.43, 179.30, 516.30, 270.97)),
        (0, (444.13, 163.92, 559.20, 247.04)),
        (0, (724.49, 171.09, 790.50, 215.13)),
        (0, (534.25, 166.20, 596.08, 216.76)),
        (0, (709.81, 162.43, 765.70, 205.68)),
        (0, (562.02, 166.42, 605.57, 206.89)),
    ],
}

DONT_CARE_BOXES = [(753.33, 164.32, 798.00, 186.74), (738.50, 171.32, 753.27, 184.42)]  # 000007
# 000021's Van, then its two DontCare regions, in file order.
VAN_AND_DONT_CARE_BOXES = [
    (870.59, 115.22, 1101.06, 213.85),
    (657.43, 162.95, 685.32, 179.78),
    (600.19, 163.56, 633.57, 188.60),
]


@pytest.fixture
def subset(tmp_path):
    kitti_subset(["--training", str(SAMPLE), "--out", str(tmp_path / "subset"), "--frames", "3"])
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
    assert info["frames"] == ["000000", "000007", "000021"]
    assert info["ignored"] == {"DontCare": 4, "Van": 1} and info["clipped_to_the_frame"] == 0
    assert (subset / "classes.txt").read_text() == "Car\nPerson\nCyclist\n"


def test_crops_land_on_the_kitti_boxes(subset, stage, params_file, tmp_path):
    stage("crop", "--params", params_file, "--frames", subset, "--out", tmp_path / "crops")
    with open(tmp_path / "crops" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    expected = [(s, k, box) for s, objects in OBJECTS.items() for k, box in objects]
    assert len(rows) == len(expected) == 12
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
    assert sorted(p.name for p in out.iterdir()) == [
        "000000.png",
        "000007.png",
        "000021.png",
        "detections.csv",
    ]
    with open(out / "detections.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["image"].rsplit("/", 1)[-1] for r in rows} <= {
        "000000.png",
        "000007.png",
        "000021.png",
    }
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


def test_the_devkit_ignores_the_neighbouring_type_of_each_class():
    """evaluate_object.cpp's cleanData: for Car a Van is neighbouring, for Pedestrian a
    Person_sitting; Cyclist has none. DontCare is ignored for every class."""
    assert ignored_kitti_types(("Car",)) == ("DontCare", "Van")
    assert ignored_kitti_types(("Person",)) == ("DontCare", "Person_sitting")
    assert ignored_kitti_types(("Cyclist",)) == ("DontCare",)
    assert ignored_kitti_types(("Car", "Person")) == ("DontCare", "Van", "Person_sitting")


def test_a_van_is_an_ignored_region_for_a_car_detector(subset, tmp_path):
    """Frame 000021's Van joins the car detector's targets as a region, as its DontCare
    regions do: 1242 x 375 in a 416 square is 416 x 126 (scale 416 / 1242 across, 126 / 375
    down) sitting (416 - 126) // 2 = 145 rows down. Its six cars stay the only objects; its
    Cyclist is no car. The split puts every frame in test."""
    (tmp_path / "split.csv").write_text(
        "frame,split,drive,reason\n" + "".join(f"{stem},test,,\n" for stem in SIZES)
    )
    data = load_split(subset, tmp_path / "split.csv", "test", ("Car",), 416)
    target = data.targets[data.stems.index("000021")]
    scale, top = 126 / 375, 145
    expected = [
        v
        for x1, y1, x2, y2 in VAN_AND_DONT_CARE_BOXES
        for v in (x1 * 416 / 1242, y1 * scale + top, x2 * 416 / 1242, y2 * scale + top)
    ]
    assert target[target[:, 0] == DONT_CARE, 1:].flatten().tolist() == pytest.approx(
        expected, abs=1e-3
    )
    assert int((target[:, 0] == 0).sum()) == 6 and len(target) == 9
