"""The report's pieces, against values worked out by hand."""

import base64

import numpy as np
import pytest
from PIL import Image

from kitti_pipeline.report.document import dataset_table, html_report
from kitti_pipeline.report.tables import (
    comparison_table,
    detector_comparison_table,
    markdown_tables,
    summarise_seeds,
)

CLASSES = ("Car", "Person", "Cyclist")


def test_table_1_by_hand_with_a_published_figure():
    dataset = {
        "crops": {
            split: {"total": t, "Car": c, "Person": p, "Cyclist": y}
            for split, (t, c, p, y) in {
                "train": (10, 8, 1, 1),
                "val": (3, 3, 0, 0),
                "test": (4, 2, 1, 1),
                "all": (17, 13, 2, 2),
            }.items()
        },
        "frames": {"train": 5, "val": 1, "test": 2, "read": 8},
    }
    lines = dataset_table(dataset, CLASSES, {"train": {"total": 1500}}).splitlines()
    assert lines[0] == "| Split | Frames | Total | Car | Person | Cyclist |"
    assert lines[2] == "| train | 5 | 10 (1500) | 8 | 1 | 1 |"
    assert lines[5] == "| all | 8 | 17 | 13 | 2 | 2 |"


def run_metrics(mca: float, car: float) -> dict:
    return {
        "mCA": mca,
        "mF1": mca,
        "mPrecision": mca,
        "mRecall": mca,
        "accuracy": car,
        "per_class": {k: {"accuracy": car} for k in CLASSES},
        "ci95": {m: {"low": 0.0, "high": 1.0} for m in ("mCA", "mF1")},
        "params": {"trainable": 1539, "total": 11_178_051},
    }


def test_seeds_give_mean_and_sample_std():
    runs = {
        ("resnet18", "frozen", 0): run_metrics(0.5, 0.9),
        ("resnet18", "frozen", 1): run_metrics(0.7, 0.8),
    }
    cell = summarise_seeds(runs, CLASSES)["resnet18"]["frozen"]
    # mean (0.5 + 0.7) / 2 = 0.6; sample std sqrt(((0.1)^2 + (0.1)^2) / 1) = 0.1414
    assert cell["mCA"] == pytest.approx(0.6) and cell["mCA_std"] == pytest.approx(2**0.5 / 10)
    assert cell["acc_Car"] == pytest.approx(0.85) and cell["seeds"] == 2
    assert cell["trainable_params"] == 1539
    published = {"resnet18": {"frozen": {"mCA": 0.812}}}
    arms = {"resnet18": {"frozen": {"mCA": {"value": 0.6, "low": 0.41, "high": 0.79}}}}
    sources = {"resnet18": "synthetic", "mobilenet_v2": "imagenet"}
    tables = markdown_tables(
        summarise_seeds(runs, CLASSES), runs, CLASSES, ["frozen"], published, arms, sources
    ).splitlines()
    # Under each table's title, where its pretrained arms started from.
    title = tables.index("### Table 4: ResNet18")
    assert tables[title + 2] == (
        "Pretrained arms start from the offline stand-in, pretrained on generated objects."
    )
    row = next(line for line in tables if line.startswith("| ResNet18 pretrained, frozen"))
    assert row.split(" | ")[1] == "0.600 ± 0.141 [0.410, 0.790] (0.812)"
    assert row.split(" | ")[2] == "0.600 ± 0.141"  # mF1: no interval given
    assert row.endswith("| 1,539 |")


def test_html_inlines_every_image(tmp_path):
    (tmp_path / "figures").mkdir()
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "figures/a.png")
    markdown = "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![a](figures/a.png)\n"
    html = html_report(markdown, tmp_path)
    assert "<table>" in html and "<td>2</td>" in html
    encoded = html.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(encoded) == (tmp_path / "figures/a.png").read_bytes()
    with pytest.raises(FileNotFoundError, match="missing.png"):
        html_report("![b](missing.png)\n", tmp_path)


def test_comparison_findings_follow_the_intervals():
    def cell(difference, low, high):
        return {"difference": difference, "low": low, "high": high, "resolved": low > 0 or high < 0}

    comparisons = {
        "resamples": 1000,
        "seeds": [0],
        "test_frames": 60,
        "comparisons": {
            "resnet18": {
                "finetune-scratch": {"mCA": cell(0.12, 0.05, 0.2), "mF1": cell(0.1, 0.02, 0.18)},
                "frozen-scratch": {"mCA": cell(-0.3, -0.4, -0.2), "mF1": cell(-0.3, -0.4, -0.2)},
            },
            "resnet18-mobilenet_v2": {
                "scratch": {"mCA": cell(0.01, -0.03, 0.05), "mF1": cell(0.0, -0.04, 0.04)},
            },
        },
    }
    lines = comparison_table(comparisons).splitlines()
    assert lines[0] == (
        "### Comparisons: paired differences, 95% intervals over 1000 bootstrap draws of the "
        "60 test frames only (one seed, 0: the spread between seeds is not in it)"
    )
    assert lines[4] == (
        "| ResNet18 pretrained, fine-tuned - ResNet18 from scratch | +0.120 | [+0.050, +0.200] "
        "| +0.100 | [+0.020, +0.180] | ResNet18 pretrained, fine-tuned ahead on these test "
        "frames, seed 0 only |"
    )
    assert lines[5].endswith("| ResNet18 from scratch ahead on these test frames, seed 0 only |")
    assert lines[6].startswith("| ResNet18 from scratch - MobileNetV2 from scratch | +0.010 |")
    assert lines[6].endswith("| not resolved (the interval holds 0) |")


def test_the_detector_comparison_table_by_hand():
    def arm(ap, f1, width):
        return {
            "best": {
                "AP50": {"value": ap, "low": ap - width, "high": ap + width},
                "F1": {"value": f1, "low": f1 - width, "high": f1 + width},
            }
        }

    cell = {"difference": 0.101, "low": 0.02, "high": 0.18, "resolved": True}
    comparison = {
        "resamples": 1000,
        "seeds": [0],
        "test_frames": 60,
        "arms": {"transfer": arm(0.541, 0.545, 0.05), "scratch": arm(0.44, 0.511, 0.06)},
        "transfer-scratch": {"AP50": cell, "F1": {**cell, "low": -0.01, "resolved": False}},
    }
    lines = detector_comparison_table(comparison).splitlines()
    assert lines[0].endswith(
        "bootstrap draws of the 60 test frames only (one seed, 0: the spread between seeds is "
        "not in it)"
    )
    assert lines[4] == (
        "| AP@0.5 | 0.541 [0.491, 0.591] | 0.440 [0.380, 0.500] | +0.101 [+0.020, +0.180] "
        "| transfer ahead on these test frames, seed 0 only |"
    )
    assert lines[5].endswith("| not resolved (the interval holds 0) |")
    assert len(lines) == 6  # no COCO or KITTI row where the comparison has none
    comparison["seeds"] = [0, 1]
    lines = detector_comparison_table(comparison).splitlines()
    assert lines[0].endswith("of the 60 test frames and seeds")
    assert lines[4].endswith("| transfer ahead |")
