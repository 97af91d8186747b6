from collections import Counter

import pytest

from kitti_pipeline.data.labels import (
    KITTI_CLASS_MAP,
    LabelError,
    kitti_to_yolo,
    read_classes,
    read_kitti_labels,
    read_yolo_labels,
    read_yolo_labels_lenient,
    same_kitti_type,
    study_class,
)

CLASSES = ("Car", "Person", "Cyclist")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yolo_fixture(tmp_path):
    path = write(tmp_path, "a.txt", "0 0.5 0.5 0.2 0.4\n\n2 0.1 0.9 0.05 0.1\n")
    labels = read_yolo_labels(path, 3, 0.01)
    assert [(x.class_id, x.cx, x.cy, x.w, x.h, x.line) for x in labels] == [
        (0, 0.5, 0.5, 0.2, 0.4, 1),
        (2, 0.1, 0.9, 0.05, 0.1, 3),  # the blank line 2 is allowed and not counted
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("0 0.5 0.5 0.2", "expected 5 fields"),
        ("0 0.5 0.5 0.2 0.4 0.9", "expected 5 fields"),
        ("car 0.5 0.5 0.2 0.4", "class id 'car' is not an integer"),
        ("0 0.5 abc 0.2 0.4", "cy 'abc' is not a number"),
        ("0 0.5 0.5 nan 0.4", "w nan is outside"),
        ("3 0.5 0.5 0.2 0.4", r"class id 3 out of range \[0, 3\)"),
        ("-1 0.5 0.5 0.2 0.4", "class id -1 out of range"),
        ("0 1.2 0.5 0.2 0.4", r"cx 1.2 is outside \[0, 1\]"),
        ("0 0.5 -0.05 0.2 0.4", r"cy -0.05 is outside \[0, 1\]"),
        ("0 0.5 0.5 0 0.4", "zero-size box"),
        ("0 0.5 0.5 0.2 0.0", "zero-size box"),
    ],
)
def test_malformed_yolo_line_names_file_and_line(tmp_path, line, problem):
    path = write(tmp_path, "000042.txt", f"0 0.5 0.5 0.2 0.4\n{line}\n")
    with pytest.raises(LabelError, match=rf"000042\.txt:2: {problem}"):
        read_yolo_labels(path, 3, 0.01)


def test_value_within_tolerance_is_accepted(tmp_path):
    path = write(tmp_path, "a.txt", "0 1.005 0.5 0.2 0.4\n")
    assert read_yolo_labels(path, 3, 0.01)[0].cx == 1.005


def test_lenient_reader_keeps_good_lines_and_reports_bad_ones(tmp_path):
    path = write(tmp_path, "a.txt", "0 0.5 0.5 0.2 0.4\n0 x 0.5 0.2 0.4\n1 0.2 0.5 0.1 0.3\n")
    labels, errors = read_yolo_labels_lenient(path, 3, 0.01)
    assert [x.line for x in labels] == [1, 3]
    assert [(e.line, e.problem) for e in errors] == [(2, "cx 'x' is not a number")]


KITTI_FIXTURE = """\
Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59
Pedestrian 0.00 1 0.21 423.17 173.67 433.17 224.03 1.60 0.38 0.30 -5.99 1.85 32.92 0.03
Van 0.00 0 -1.53 560.00 160.00 590.00 190.00 2.00 1.80 4.50 -1.00 1.70 50.00 -1.55
Cyclist 0.30 0 1.00 1200.00 150.00 1250.00 250.00 1.70 0.60 1.80 5.00 1.70 20.00 1.20
DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10
"""


def test_kitti_fixture_parses(tmp_path):
    objects = read_kitti_labels(write(tmp_path, "000001.txt", KITTI_FIXTURE))
    assert [o.type for o in objects] == ["Car", "Pedestrian", "Van", "Cyclist", "DontCare"]
    ped = objects[1]
    assert (ped.truncated, ped.occluded, ped.alpha) == (0.0, 1, 0.21)
    assert ped.box == (423.17, 173.67, 433.17, 224.03)
    assert ped.dimensions == (1.60, 0.38, 0.30)
    assert ped.location == (-5.99, 1.85, 32.92)
    assert (ped.rotation_y, ped.line) == (0.03, 2)


def test_kitti_to_yolo_by_hand(tmp_path):
    objects = read_kitti_labels(write(tmp_path, "000001.txt", KITTI_FIXTURE))
    lines, ignored, clipped = kitti_to_yolo(objects, 1242, 375, CLASSES, KITTI_CLASS_MAP)
    # Car: cx = (587.01 + 614.12) / 2 / 1242 = 0.483547,
    #      cy = (173.33 + 200.12) / 2 / 375 = 0.497933,
    #      w = 27.11 / 1242 = 0.021828, h = 26.79 / 375 = 0.071440
    # Pedestrian -> Person (id 1): cx = 428.17 / 1242 = 0.344742, cy = 198.85 / 375 = 0.530267,
    #      w = 10 / 1242 = 0.008052, h = 50.36 / 375 = 0.134293
    # Cyclist runs off the right edge: clipped to x2 = 1242, so cx = 1221 / 1242, w = 42 / 1242
    assert lines == [
        "0 0.483547 0.497933 0.021828 0.071440",
        "1 0.344742 0.530267 0.008052 0.134293",
        "2 0.983092 0.533333 0.033816 0.266667",
    ]
    assert ignored == Counter({"Van": 1, "DontCare": 1})
    assert clipped == 1  # the Cyclist, and only it, reached past the frame


def test_kitti_types_compare_case_blind_as_the_devkit_does(tmp_path):
    """The devkit matches types with strcasecmp: `car`, `CAR` and `Car` are one type, and a
    lower-case `dontcare` region is a DontCare region."""
    assert same_kitti_type("car", "Car") and same_kitti_type("DONTCARE", "DontCare")
    assert not same_kitti_type("Van", "Car")
    assert study_class("pedestrian", KITTI_CLASS_MAP) == "Person"
    assert study_class("Person_sitting", KITTI_CLASS_MAP) is None
    text = KITTI_FIXTURE.replace("Car ", "car ", 1).replace("Pedestrian ", "PEDESTRIAN ", 1)
    objects = read_kitti_labels(write(tmp_path, "000002.txt", text))
    lines, ignored, _ = kitti_to_yolo(objects, 1242, 375, CLASSES, KITTI_CLASS_MAP)
    assert [line.split()[0] for line in lines] == ["0", "1", "2"]  # Car, Person, Cyclist
    assert ignored == Counter({"Van": 1, "DontCare": 1})


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70",
            "expected 15 KITTI fields, got 14",
        ),
        (
            "Car 0.00 0 -1.58 587.01 abc 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59",
            "y1 'abc' is not a number",
        ),
        (
            "Car 0.00 7 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59",
            "occluded 7 is not one of",
        ),
        (
            "Car 0.00 0 -1.58 nan 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59",
            "x1 'nan' is not a finite number",
        ),
        (
            "Car 0.00 0 -1.58 587.01 173.33 inf 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59",
            "x2 'inf' is not a finite number",
        ),
        (
            "Car 2.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59",
            "truncated 2.00 is not between 0 and 1",
        ),
    ],
)
def test_malformed_kitti_line_names_file_and_line(tmp_path, line, problem):
    path = write(tmp_path, "000007.txt", KITTI_FIXTURE.splitlines()[0] + "\n" + line + "\n")
    with pytest.raises(LabelError, match=rf"000007\.txt:2: {problem}"):
        read_kitti_labels(path)


def test_kitti_zero_size_kept_box_is_an_error(tmp_path):
    line = "Car 0.00 0 -1.58 1300.0 173.33 1400.0 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
    path = write(tmp_path, "000008.txt", line)
    with pytest.raises(LabelError, match=r"000008\.txt:1: zero-size box"):
        kitti_to_yolo(read_kitti_labels(path), 1242, 375, CLASSES, KITTI_CLASS_MAP, source=path)


def test_classes_file(tmp_path):
    assert read_classes(write(tmp_path, "classes.txt", "Car\nPerson\nCyclist\n")) == CLASSES
    with pytest.raises(LabelError, match="duplicate class names"):
        read_classes(write(tmp_path, "dup.txt", "Car\nCar\n"))
