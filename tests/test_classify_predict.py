"""`kitti-classify`: a trained classifier on crop images, a frames folder and a KITTI training/
folder, each crop's scores checked against the network run by hand on the same pixels."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kitti_pipeline.classify.commands import classify_main as kitti_classify
from kitti_pipeline.classify.model_files import save_classifier
from kitti_pipeline.classify.models import build_classifier
from kitti_pipeline.data.subset import main as kitti_subset

from .conftest import ROOT

SAMPLE = ROOT / "tests/data/kitti_sample/training"
CLASSES = ("Car", "Person", "Cyclist")
# The sample's kept objects in file order (tests/test_real_kitti.py works out their boxes).
ACTUAL = [
    ("000000", 1, "Person"),
    ("000007", 1, "Car"),
    ("000007", 2, "Car"),
    ("000007", 3, "Car"),
    ("000007", 4, "Cyclist"),
    ("000021", 1, "Cyclist"),
    *(("000021", line, "Car") for line in (2, 3, 5, 6, 7, 8)),
]


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    model = build_classifier("resnet18", len(CLASSES))
    with torch.no_grad():  # a head far from uniform, so that each crop has a clear winner
        model.fc.weight.mul_(20)
    record = {
        "arch": "resnet18",
        "regime": "finetune",
        "seed": 0,
        "classes": list(CLASSES),
        "image_size": 32,
        "trainable_params": 1,
        "total_params": 1,
    }
    save_classifier(tmp_path / "model.pt", model, record)
    return tmp_path / "model.pt", model.eval()


def scores_by_hand(model, image: Image.Image) -> list[float]:
    """The softmax of the network on one 32x32 RGB crop, normalised with ImageNet's statistics."""
    x = torch.tensor(np.asarray(image), dtype=torch.float64).permute(2, 0, 1) / 255
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(3, 1, 1)
    with torch.no_grad():
        logits = model(((x - mean) / std).float()[None])[0]
    return logits.double().softmax(0).tolist()


def read_rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_crop_images_are_resized_and_scored_as_the_network_scores_them(model_file, tmp_path):
    path, model = model_file
    rng = np.random.default_rng(0)
    (tmp_path / "crops").mkdir()
    for i, size in enumerate(((32, 32), (50, 20))):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "crops" / f"{i}.png")
    kitti_classify([str(tmp_path / "crops"), "--model", str(path), "--out", str(tmp_path / "out")])
    rows = read_rows(tmp_path / "out/predictions.csv")
    assert [Path(r["image"]).name for r in rows] == ["0.png", "1.png"]
    for row in rows:
        with Image.open(row["image"]) as opened:  # stretched to 32x32 as the crop stage does
            crop = opened.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)
        expected = scores_by_hand(model, crop)
        got = [float(row[f"score_{c}"]) for c in CLASSES]
        assert got == pytest.approx(expected, abs=2e-5)
        assert row["class"] == CLASSES[int(np.argmax(expected))]
        assert row["actual"] == row["line"] == ""


def test_a_frames_folder_gives_the_crop_stages_crops(model_file, tmp_path, stage, params_file):
    """kitti-subset's folder of the three real frames: every kept object in file order with its
    true class, scored as the crop stage's own crop of it is scored by hand."""
    path, model = model_file
    kitti_subset(["--training", str(SAMPLE), "--out", str(tmp_path / "subset"), "--frames", "all"])
    stage("crop", "--params", params_file, "--frames", tmp_path / "subset", "--out", tmp_path / "c")
    crops = {
        (r["frame"], int(r["line"])): r["crop"] for r in read_rows(tmp_path / "c/manifest.csv")
    }
    kitti_classify([str(tmp_path / "subset"), "--model", str(path), "--out", str(tmp_path / "o")])
    rows = read_rows(tmp_path / "o/predictions.csv")
    # kitti-subset writes the kept objects in label_2 order: YOLO line k is the k-th kept one.
    kept = [(stem, actual) for stem, _, actual in ACTUAL]
    assert [(Path(r["image"]).stem, r["actual"]) for r in rows] == kept
    for row in rows:
        with Image.open(tmp_path / "c" / crops[Path(row["image"]).stem, int(row["line"])]) as crop:
            expected = scores_by_hand(model, crop.convert("RGB"))
        assert [float(row[f"score_{c}"]) for c in CLASSES] == pytest.approx(expected, abs=2e-5)
    assert read_rows(tmp_path / "o/skipped.csv") == []


def test_a_kitti_training_folder_is_cropped_at_the_label_2_boxes(model_file, tmp_path):
    """Each kept object's crop: its label_2 box rounded to whole pixels, cut out and stretched
    to 32x32 bilinearly, as the crop stage resizes a box."""
    path, model = model_file
    kitti_classify([str(SAMPLE), "--model", str(path), "--out", str(tmp_path / "o")])
    rows = read_rows(tmp_path / "o/predictions.csv")
    assert [(Path(r["image"]).stem, int(r["line"]), r["actual"]) for r in rows] == ACTUAL
    for row in rows:
        stem, line = Path(row["image"]).stem, int(row["line"])
        fields = (SAMPLE / "label_2" / f"{stem}.txt").read_text().splitlines()[line - 1].split()
        x1, y1, x2, y2 = (round(float(v)) for v in fields[4:8])
        with Image.open(SAMPLE / "image_2" / f"{stem}.png") as frame:
            crop = frame.convert("RGB").crop((x1, y1, x2, y2))
        crop = crop.resize((32, 32), Image.Resampling.BILINEAR)
        expected = scores_by_hand(model, crop)
        assert [float(row[f"score_{c}"]) for c in CLASSES] == pytest.approx(expected, abs=2e-5)
        assert row["class"] == CLASSES[int(np.argmax(expected))]


def test_a_box_below_the_minimum_is_listed_not_dropped(model_file, tmp_path):
    """000007's third car is 23.2 x 18.2 px: under --min-box-size 20 it is skipped and listed."""
    path, _ = model_file
    out = tmp_path / "out"
    kitti_classify([str(SAMPLE), "--model", str(path), "--out", str(out), "--min-box-size", "20"])
    skipped = read_rows(out / "skipped.csv")
    assert [(Path(s["path"]).name, s["line"]) for s in skipped] == [("000007.txt", "3")]
    assert len(read_rows(out / "predictions.csv")) == len(ACTUAL) - 1


def test_a_corrupt_model_file_is_one_line(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"not a torch file")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    command = [Path(sys.executable).parent / "kitti-classify", tmp_path / "a.png"]
    done = subprocess.run(
        [*map(str, command), "--model", str(tmp_path / "model.pt"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "model.pt: not a readable torch file" in done.stderr
