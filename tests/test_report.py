"""The report's pieces, against values worked out by hand."""

import base64

import numpy as np
import pytest
import yaml
from PIL import Image

from kitti_pipeline.core.params import load_params
from kitti_pipeline.report.document import dataset_table, html_report
from kitti_pipeline.report.summary import (
    findings_summary,
    profile_banner,
    published_confusion,
    published_notes,
    study_citation,
)
from kitti_pipeline.report.tables import (
    comparison_table,
    detector_comparison_table,
    markdown_tables,
    summarise_seeds,
)

from .conftest import ROOT

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
    assert lines[2] == "| train | 5 | 10 (study 1500) | 8 | 1 | 1 |"
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
    published = {"resnet18": {"frozen": {"mCA": 81.2}}}  # as the study prints it
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
    # The figure, its interval and the study's figure on lines of their own: a narrow column.
    assert row.split(" | ")[1] == "0.600 ± 0.141<br>[0.410, 0.790]<br>(study 81.20%)"
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
        "| transfer - scratch | AP@0.5 | 0.541 [0.491, 0.591] | 0.440 [0.380, 0.500] "
        "| +0.101 [+0.020, +0.180] | transfer ahead on these test frames, seed 0 only |"
    )
    assert lines[5].endswith("| not resolved (the interval holds 0) |")
    assert len(lines) == 6  # no COCO or KITTI row where the comparison has none
    comparison["seeds"] = [0, 1]
    lines = detector_comparison_table(comparison).splitlines()
    assert lines[0].endswith("of the 60 test frames and seeds")
    assert lines[4].endswith("| transfer ahead |")
    # A regime against the zero-shot head it starts from: a row of its own, behind the study's.
    comparison["arms"]["zeroshot"] = arm(0.6, 0.5, 0.04)
    comparison["transfer-zeroshot"] = {"AP50": {**cell, "difference": -0.059, "low": -0.1}}
    lines = detector_comparison_table(comparison).splitlines()
    assert lines[6] == (
        "| transfer - zeroshot | AP@0.5 | 0.541 [0.491, 0.591] | 0.600 [0.560, 0.640] "
        "| -0.059 [-0.100, +0.180] | not resolved (the interval holds 0) |"
    )


def test_the_summary_states_each_question_from_its_interval():
    def cell(difference, low, high):
        return {"mCA": {"difference": difference, "low": low, "high": high}}

    classifier = {
        "seeds": [0],
        "test_frames": 60,
        "comparisons": {
            "resnet18": {
                "finetune-scratch": cell(0.067, -0.004, 0.143),
                "frozen-scratch": cell(-0.132, -0.26, -0.014),
                "frozen-frozen_random": cell(0.394, 0.289, 0.486),
            },
            "mobilenet_v2": {
                "finetune-scratch": cell(0.234, 0.139, 0.336),
                "frozen-scratch": cell(0.119, -0.012, 0.237),
                "frozen-frozen_random": cell(0.534, 0.436, 0.611),
            },
            "resnet18-mobilenet_v2": {"finetune": cell(-0.056, -0.114, -0.016)},
        },
    }
    ap = {"difference": 0.006, "low": -0.084, "high": 0.097}
    lines = findings_summary(classifier, {"transfer-scratch": {"AP50": ap}})
    assert lines[0] == (
        "- **Fine-tuned against from scratch** (mCA): ResNet18 +0.067 [-0.004, +0.143], not "
        "resolved; MobileNetV2 +0.234 [+0.139, +0.336], fine-tuned ahead."
    )
    assert lines[1] == (
        "- **Frozen against from scratch** (mCA): ResNet18 -0.132 [-0.260, -0.014], from "
        "scratch ahead; MobileNetV2 +0.119 [-0.012, +0.237], not resolved."
    )
    assert lines[3] == (
        "- **ResNet18 against MobileNetV2, both fine-tuned** (mCA): -0.056 [-0.114, -0.016], "
        "MobileNetV2 ahead."
    )
    assert lines[4] == (
        "- **Detector, transfer against scratch** (best checkpoints): AP@0.5 +0.006 "
        "[-0.084, +0.097], not resolved."
    )
    assert "60 test frames only (one seed, 0" in lines[6]


def test_the_banner_names_the_data_and_weights_and_the_study_has_none():
    params = load_params(ROOT / "params.yaml")
    banner = profile_banner(params, "demo", 200)[0]
    assert banner.startswith("> **Not the study's run.** Profile `demo`: generated KITTI-like ")
    assert "(`data/synthetic`, 200), not KITTI" in banner
    assert "ResNet18 from the offline stand-in, pretrained on generated objects" in banner
    assert "MobileNetV2 from torchvision's ImageNet file (IMAGENET1K_V1)" in banner
    assert "`cfg/yolov3-tiny.cfg` at 416x128" in banner
    assert "transfer from `yolov3-tiny.weights`" in banner
    assert profile_banner(params, "study", 500) == []


def test_the_published_figures_are_the_studys_as_printed():
    """reports/published.yaml against the study's printed tables, a few cells read off them,
    and the citation the report opens with."""
    published = yaml.safe_load((ROOT / "reports/published.yaml").read_text())
    assert study_citation(published["study"]) == (
        "\u201cAssignment 2\u201d, Aprendizagem Profunda Aplicada 2022/2023, Duarte Sousa Cruz "
        "and Gonçalo Tomaz Arsénio (2022-11-25)"
    )
    assert published["classifier"]["resnet18"]["finetune"]["mCA"] == 89.50
    assert published["classifier"]["mobilenet_v2"]["scratch"]["acc_Cyclist"] == 0.0
    assert published["detector"]["transfer"]["best"] == {
        "epoch": 150,
        "precision": 67.05,
        "recall": 79.46,
        "AP50": 72.67,
        "F1": 72.72,
    }
    assert published["table1"]["all"]["total"] == 2499
    matrix = np.array(published["confusion"]["resnet18-finetune"])
    assert matrix.sum(axis=1).tolist() == [851, 111, 37]  # the note's row sums
    assert len(published["notes"]["classifier"]) == 3
    notes = published_notes(published["notes"]["detector"])
    assert notes[0] == "> On the study's printed figures:" and notes[2].startswith("> - Precision")
    table = published_confusion(published["confusion"], CLASSES)
    assert table[4] == "| Car | 844 | 6 | 1 |"
