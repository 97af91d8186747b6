"""The study profile's pipeline at the study's real shapes, with only counts shrunk.

Everything the study touches runs: a KITTI `training/` folder (generated KITTI-sized frames and
the two real ones) through `kitti-subset`, 128-px crops, ResNet18 and MobileNetV2 from
torchvision-format ImageNet state-dict files in the torch hub cache under torchvision's file
names, and `cfg/yolov3.cfg` at 416 from an 80-class Darknet file in the official layout, in the
same cache; each file is pinned in `pretrained.files` by its own digest. Only frames,
crops, epochs and resamples are few, and the device is the CPU. The stages are dvc.yaml's as DVC
expands them under the profile, run in this process (`conftest.run_pipeline_in_process`), and
DVC then takes their outputs as the pipeline's; `tests/test_pipeline.py` runs `dvc repro` itself.
"""

import hashlib
import json
import os
import re
import shutil
import sys

import numpy as np
import pytest
import torch
import yaml

from kitti_pipeline.classify.model_files import load_classifier
from kitti_pipeline.classify.models import HEAD_KEYS, build_classifier
from kitti_pipeline.core.files import save_torch
from kitti_pipeline.core.params import load_params
from kitti_pipeline.core.profiles import merge_overrides
from kitti_pipeline.data.synthetic import synthetic_frame
from kitti_pipeline.detect.darknet import _conv_tensors, build_darknet, write_weights
from kitti_pipeline.detect.model_files import load_detector
from kitti_pipeline.pretrain.real_weights import KNOWN_FILES, imagenet_file_name

from .conftest import ROOT, copy_project, project_runner, run_pipeline_in_process
from .reference_metrics import reference_test_figures

pytestmark = pytest.mark.slow

# The generated 80-class yolov3 file: its size is the published yolov3.weights' size, and its
# digest is pinned as the study pins the real file's.
DARKNET_BYTES = 248_007_048
DARKNET_SHA256 = "a4c6888651033aef540b4128434ce56e076c06ec6ce2eea67a8d5ee0eb6658ea"
SAMPLE = ROOT / "tests/data/kitti_sample/training"


def write_darknet_file(path, seed=0):
    """An 80-class `cfg/yolov3.cfg` file in Darknet's layout (version 0.2 header), its values
    drawn by numpy from `seed`: the same bytes on every machine."""
    rng = np.random.default_rng(seed)
    model = build_darknet(ROOT / "cfg/yolov3.cfg", 80)
    with torch.no_grad():
        for layer in model.convolutions():
            for tensor in _conv_tensors(layer):
                values = rng.standard_normal(tensor.numel(), dtype=np.float32) * 0.05
                tensor.copy_(torch.from_numpy(values).view_as(tensor))
            if hasattr(layer, "bn"):  # a positive variance
                layer.bn.running_var.abs_().add_(0.5)
    write_weights(model, path)


def write_kitti_training(root, frames):
    """A KITTI `training/` folder: `frames` generated 1242x375 frames and the three real ones."""
    (root / "image_2").mkdir(parents=True)
    (root / "label_2").mkdir()
    cfg = load_params(ROOT / "params.yaml")
    for i in range(frames):
        image, _, kitti = synthetic_frame(cfg.synthesize, cfg.data.classes, i)
        image.save(root / "image_2" / f"{100 + i:06d}.png")
        (root / "label_2" / f"{100 + i:06d}.txt").write_text("".join(f"{k}\n" for k in kitti))
    for folder in ("image_2", "label_2"):
        for path in (SAMPLE / folder).iterdir():
            shutil.copy(path, root / folder / path.name)


def test_the_study_profile_runs_at_the_study_shapes(tmp_path):
    repo, hub = tmp_path / "repo", tmp_path / "torch_home/hub/checkpoints"
    copy_project(repo)
    run = project_runner(repo, TORCH_HOME=str(tmp_path / "torch_home"))
    bin_dir = os.path.dirname(sys.executable)
    try:
        hub.mkdir(parents=True)
        darknet = hub / "yolov3.weights"  # where stage pretrained@yolov3.weights looks first
        write_darknet_file(darknet)
        assert darknet.stat().st_size == DARKNET_BYTES
        digest = hashlib.sha256(darknet.read_bytes()).hexdigest()
        assert digest == DARKNET_SHA256
        imagenet = {}
        for seed, arch in enumerate(("resnet18", "mobilenet_v2")):
            torch.manual_seed(seed)
            state = build_classifier(arch, 1000).state_dict()
            path = hub / imagenet_file_name(arch)  # e.g. resnet18-f37072fd.pth
            save_torch(state, path)
            imagenet[arch] = (state, hashlib.sha256(path.read_bytes()).hexdigest())

        write_kitti_training(tmp_path / "training", 13)
        subset = ("--training", tmp_path / "training", "--out", repo / "data/kitti_subset")
        run(os.path.join(bin_dir, "kitti-subset"), *map(str, subset), "--frames", "16")
        run(os.path.join(bin_dir, "kitti-profile"), "study")
        raw = yaml.safe_load((repo / "params.yaml").read_text())
        study = {
            "cfg": raw["detector"]["cfg"],
            "img_size": raw["detector"]["img_size"],
            "crop": raw["crop"]["image_size"],
            "frames": raw["data"]["frames"],
            "weights": raw["detector"]["init"]["weights"],
            "seeds": (raw["classifier"]["seeds"], raw["detector"]["seeds"]),
        }
        assert study == {
            "cfg": "cfg/yolov3.cfg",
            "img_size": 416,
            "crop": 128,
            "frames": "data/kitti_subset",
            "weights": "yolov3.weights",
            "seeds": ([0, 1, 2], [0, 1, 2]),
        }
        assert (
            raw["pretrained"]["files"]
            == {name: known.sha256 for name, known in KNOWN_FILES.items()}
            and len(raw["pretrained"]["files"]) == 4
        )
        # The generated files stand in for the real ones: the pins name their digests instead.
        pins = {imagenet_file_name(a): d for a, (_, d) in imagenet.items()}
        merge_overrides(
            raw,
            {
                "pretrained": {"files": {**pins, "yolov3.weights": DARKNET_SHA256}},
                "synthesize": {"frames": 2},
                "split": {"train_crops": 24, "val_crops": 8},
                "classifier": {
                    "seeds": [0],
                    "train": {"epochs": 1, "device": "cpu"},
                    "bootstrap": 20,
                },
                "detector": {
                    "seeds": [0],
                    "train": {"epochs": 1, "eval_every": 1, "device": "cpu"},
                    "evaluate": {"bootstrap": 20, "pictures": 1},
                },
            },
        )
        (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        run("git", "init", "-q")
        run(os.path.join(bin_dir, "dvc"), "init", "-q")
        shutil.copytree(ROOT / ".dvc/plots", repo / ".dvc/plots")
        with pytest.MonkeyPatch.context() as monkey:  # the hub cache, for this process's stages
            monkey.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
            ran = run_pipeline_in_process(repo)
        assert {"train_detector@transfer-0", "report"} <= set(ran), ran
        # DVC takes what the stages wrote as the pipeline's: `dvc commit` hashes every declared
        # output into dvc.lock (a missing one fails it), and the pipeline is then up to date.
        run(os.path.join(bin_dir, "dvc"), "commit", "--force")
        status = run(os.path.join(bin_dir, "dvc"), "status")
        assert "Data and pipelines are up to date" in status, status

        # The classifiers started from the ImageNet files: a frozen backbone is theirs exactly.
        crops = yaml.safe_load((repo / "params.yaml").read_text())["data"]["classes"]
        for arch, (state, _) in imagenet.items():
            info = json.loads((repo / f"metrics/init/{arch}.json").read_text())
            assert info["weights"] == f"{arch} IMAGENET1K_V1"
            model, record = load_classifier(
                repo / f"models/classifier/{arch}-frozen-s0.pt", tuple(crops)
            )
            assert record["image_size"] == 128
            trained = model.state_dict()
            for key, value in state.items():
                if key not in HEAD_KEYS[arch]:
                    assert torch.equal(trained[key], value), (arch, key)

        # The detector: Darknet-53 at 416 from the 80-class file, one class learned.
        init = json.loads((repo / "metrics/detector/init.json").read_text())
        assert init["file_classes"] == 80 and init["sha256"] == DARKNET_SHA256
        assert init["file"] == "yolov3.weights"
        for run_name in ("transfer", "scratch"):
            model, info = load_detector(repo / f"models/detector/{run_name}-s0/best.pt")
            assert info["img_size"] == 416 and info["classes"] == ["Car"]
            assert sum(p.numel() for p in model.parameters()) == 61_523_734
            metrics = json.loads((repo / f"metrics/detector/{run_name}-s0.json").read_text())
            stems = json.loads((repo / f"data/detector_matches/{run_name}-s0.json").read_text())
            reference = reference_test_figures(
                repo / f"models/detector/{run_name}-s0/best.pt",
                repo / "data/kitti_subset",
                stems["stems"],
                raw["detector"]["evaluate"]["nms_iou"],
                raw["detector"]["evaluate"]["conf_threshold"],
            )
            for key, value in reference.items():
                assert metrics["best"]["Car"][key] == pytest.approx(value, abs=1e-6), key
            assert set(metrics["best"]["Car"]["kitti_AP40"]) == {"easy", "moderate", "hard"}
        report = (repo / "reports/REPORT.md").read_text()
        assert "profile `study with " in report  # the counts shrunk here, named
        # The study's printed figures under ours, its notes, and no "not the study" banner.
        assert "The study: \u201cAssignment 2\u201d, Aprendizagem Profunda Aplicada" in report
        row = next(r for r in report.splitlines() if r.startswith("| ResNet18 pretrained, fine"))
        assert row.split(" | ")[1].endswith("<br>(study 89.50%)")
        assert re.search(r"\| Yes \| best \| \d+<br>\(study 150\) \|", report)
        assert report.count("> On the study's printed figures:") == 3
        assert "| Car | 844 | 6 | 1 |" in report
        assert "Not the study's run" not in report
    finally:  # gigabytes of models, states and DVC cache
        shutil.rmtree(tmp_path / "repo", ignore_errors=True)
        shutil.rmtree(tmp_path / "torch_home", ignore_errors=True)
