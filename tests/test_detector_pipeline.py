"""The detector stages, end to end, on the shrunk params."""

import hashlib
import json

import pytest
import torch
import yaml
from PIL import Image

from kitti_pipeline.core.files import read_csv
from kitti_pipeline.core.params import load_params
from kitti_pipeline.data.boxes import clip, denormalise
from kitti_pipeline.data.labels import read_yolo_labels
from kitti_pipeline.detect.commands import detect_main
from kitti_pipeline.detect.darknet import build_darknet, write_weights
from kitti_pipeline.detect.data import load_split
from kitti_pipeline.detect.model_files import load_detector
from kitti_pipeline.detect.predict import detect_frames, read_image

from .conftest import ROOT, run_data_stages
from .reference_metrics import reference_test_figures

pytestmark = pytest.mark.slow
RUNS = ("transfer", "scratch")
TINY_SHA256 = "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"


def initialise(stage, params, out, pretrained=None):
    stage(
        "init_detector",
        "--params",
        params,
        *(("--pretrained", pretrained) if pretrained else ()),
        "--out",
        out / "init.weights",
        "--metrics",
        out / "init.json",
    )


def train(stage, params, out, run, seed=0):
    name = f"{run}-s{seed}"
    cfg = out / "detector.cfg"  # the detector_anchors stage's, when the test ran it
    if not cfg.exists():
        cfg = ROOT / yaml.safe_load(params.read_text())["detector"]["cfg"]
    stage(
        "train_detector",
        "--params",
        params,
        "--run-name",
        run,
        "--seed",
        seed,
        "--cfg",
        cfg,
        "--frames",
        out / "frames",
        "--split",
        out / "frame_split.csv",
        # Scratch reads no init files, as its stage in dvc.yaml passes none.
        *(
            ("--init", out / "init.weights", "--init-info", out / "init.json")
            if run == "transfer"
            else ()
        ),
        "--checkpoints",
        out / f"checkpoints/{name}",
        "--model",
        out / f"models/{name}",
        "--provenance",
        out / f"models/{name}.json",
        "--history",
        out / f"history/{name}.csv",
    )


def evaluate(stage, params, out, run, seed=0):
    run = f"{run}-s{seed}"
    stage(
        "evaluate_detector",
        "--params",
        params,
        "--frames",
        out / "frames",
        "--split",
        out / "frame_split.csv",
        "--model",
        out / f"models/{run}",
        "--metrics",
        out / f"metrics/{run}.json",
        "--pr",
        out / f"pr/{run}.csv",
        "--matches",
        out / f"matches/{run}.json",
    )


def fresh_head(params_file):
    """The demo's starting point, a fresh head, and the study's two runs: the ci profile's COCO
    car rows and added regimes are the end-to-end tests'."""
    raw = yaml.safe_load(params_file.read_text())
    raw["detector"]["init"]["head_classes"] = None
    raw["detector"]["regimes"] = ["transfer"]
    params_file.write_text(yaml.safe_dump(raw))


def test_detector_stages(stage, params_file, tmp_path, capsys):
    out = tmp_path
    fresh_head(params_file)
    run_data_stages(stage, params_file, out)
    initialise(stage, params_file, out)
    info = json.loads((out / "init.json").read_text())
    # pjreddie's COCO yolov3-tiny: 13 convolutions, all but the two prediction convs carry over.
    assert (info["source"], info["file"], info["file_classes"]) == (
        "darknet",
        "yolov3-tiny.weights",
        80,
    )
    assert info["loaded_convolutions"] == 11 and info["head_classes"] is None
    digest = hashlib.sha256((out / "init.weights").read_bytes()).hexdigest()
    assert info["sha256"] == info["file_sha256"] == digest == TINY_SHA256

    raw = yaml.safe_load(params_file.read_text())
    raw["detector"]["seeds"] = [0, 1]
    # Low enough that the runs of two tiny epochs have detections above it to count.
    raw["detector"]["evaluate"]["conf_threshold"] = 0.01
    params = out / "two_seeds.yaml"
    params.write_text(yaml.safe_dump(raw))
    stage(
        "detector_anchors",
        *("--params", params, "--frames", out / "frames", "--split", out / "frame_split.csv"),
        *("--out", out / "detector.cfg", "--metrics", out / "anchors.json"),
    )
    assert (out / "detector.cfg").read_text() == (ROOT / raw["detector"]["cfg"]).read_text()
    capsys.readouterr()
    names = [f"{run}-s{seed}" for run in RUNS for seed in (0, 1)]
    for run in RUNS:
        for seed in (0, 1):
            train(stage, params, out, run, seed)
            evaluate(stage, params, out, run, seed)
    assert "transfer: loaded 11 convolutions" in capsys.readouterr().out

    split = read_csv(out / "split.csv")
    test_frames = sorted({r["frame"] for r in split if r["split"] == "test"})
    # Cars in the test frames, counted from the label files themselves.
    cars = sum(
        line.split()[0] == "0"
        for stem in test_frames
        for line in (out / "frames/labels" / f"{stem}.txt").read_text().splitlines()
    )
    for run in names:
        history = read_csv(out / f"history/{run}.csv")
        # The starting weights (epoch 0), then eval_every 1 over 2 epochs; no train loss at 0.
        assert [int(r["epoch"]) for r in history] == [0, 1, 2]
        assert history[0]["train_total"] == "" and float(history[1]["train_total"]) > 0
        # Training keeps what picks the best epoch; every thresholded figure is evaluation's.
        assert list(history[0])[-2:] == ["val_loss", "AP50"] and "F1" not in history[0]
        # One resumable state per run, holding the last and the best epoch's weights.
        assert [p.name for p in (out / f"checkpoints/{run}").iterdir()] == ["state.pt"]
        state = torch.load(out / f"checkpoints/{run}/state.pt", weights_only=True)
        assert {"model", "optimizer", "best", "history", "key"} <= set(state)
        best_epoch = max(history, key=lambda r: (float(r["AP50"]), -int(r["epoch"])))["epoch"]
        assert state["best"]["epoch"] == int(best_epoch) and state["epoch"] == 2
        models = {
            name: torch.load(out / f"models/{run}/{name}.pt", weights_only=True)
            for name in ("best", "last")
        }
        for name, value in models["best"]["state_dict"].items():
            assert torch.equal(value, state["best"]["model"][name]), name
            assert torch.equal(models["last"]["state_dict"][name], state["model"][name]), name
        provenance = json.loads((out / f"models/{run}.json").read_text())
        assert (provenance["best_epoch"], provenance["last_epoch"]) == (int(best_epoch), 2)
        assert f"{provenance['run']}-s{provenance['seed']}" == run
        assert "code_version" in provenance and "code_version" not in models["best"]
        metrics = json.loads((out / f"metrics/{run}.json").read_text())
        assert metrics["test_frames"] == len(test_frames)
        assert metrics["best"]["epoch"] == int(best_epoch) and metrics["last"]["epoch"] == 2
        car = metrics["last"]["Car"]
        assert car["ground_truths"] == cars
        assert set(car["kitti_AP40"]) == {"easy", "moderate", "hard"}
        reference = reference_test_figures(
            out / f"models/{run}/last.pt", out / "frames", test_frames, 0.45, 0.01
        )
        for key, value in reference.items():
            assert car[key] == pytest.approx(value, abs=1e-6), (run, key)
        pr = read_csv(out / f"pr/{run}.csv")
        assert len(pr) == 101 and float(pr[0]["recall"]) == 0 and float(pr[-1]["recall"]) == 1
        for checkpoint in ("best", "last"):
            figures = metrics[checkpoint]["Car"]
            for key in ("AP50", "F1", "AP50_95"):
                ci = figures["ci95"][key]
                assert ci["low"] <= figures[key] <= ci["high"], (checkpoint, key)
            assert set(figures["ci95"]) == {
                *("precision", "recall", "AP50", "F1", "AP50_95", "AP40_iou70_all_truths")
            } | {f"kitti_AP40_{level}" for level in ("easy", "moderate", "hard")}
        matches = json.loads((out / f"matches/{run}.json").read_text())
        assert matches["stems"] == test_frames
        assert matches["best"]["epoch"] == metrics["best"]["epoch"]
        assert sum(matches["best"]["AP50"]["truths"]) == cars
        assert len(matches["last"]["AP50_95"]["hits"]) == 10  # COCO's thresholds
    # A seed draws its own weights: the scratch runs of seeds 0 and 1 differ.
    first, second = (
        torch.load(out / f"models/scratch-s{seed}/last.pt", weights_only=True)["state_dict"]
        for seed in (0, 1)
    )
    assert not all(torch.equal(first[k], second[k]) for k in first)

    stage(
        "compare_detectors",
        *("--params", params, "--matches", out / "matches", "--out", out / "comparison.json"),
    )
    comparison = json.loads((out / "comparison.json").read_text())
    runs = {r: json.loads((out / f"metrics/{r}.json").read_text()) for r in names}

    def mean(run, checkpoint, get):
        return sum(get(runs[f"{run}-s{s}"][checkpoint]["Car"]) for s in (0, 1)) / 2

    for run in RUNS:
        for checkpoint in ("best", "last"):
            arm = comparison["arms"][run][checkpoint]
            for key in ("precision", "recall", "AP50", "F1", "AP50_95", "AP40_iou70_all_truths"):
                expected = mean(run, checkpoint, lambda m, key=key: m[key])
                assert arm[key]["value"] == pytest.approx(expected, abs=1e-12), (run, key)
            moderate = mean(run, checkpoint, lambda m: m["kitti_AP40"]["moderate"])
            assert arm["kitti_AP40_moderate"]["value"] == pytest.approx(moderate, abs=1e-12)
    cells = comparison["transfer-scratch"]
    assert set(cells) == {"AP50", "F1", "AP50_95", "kitti_AP40_moderate"}
    assert cells["AP50"]["difference"] == pytest.approx(
        mean("transfer", "best", lambda m: m["AP50"]) - mean("scratch", "best", lambda m: m["AP50"])
    )

    (out / "metrics/extra.json").write_text("{}")  # the report reads only the runs it names
    stage(
        "detector_report",
        *("--params", params, "--runs", out / "metrics"),
        *("--comparison", out / "comparison.json", "--histories", out / "history"),
        *("--pr", out / "pr", "--summary", out / "summary.json", "--table", out / "t.md"),
        *("--val-ap", out / "val_ap.csv", "--curves", out / "curves.csv"),
    )
    table = (out / "t.md").read_text()
    assert "| Yes | best |" in table and "| No | last | 2, 2 |" in table
    assert " ± " in table  # two seeds: mean ± std
    assert "### Paired differences" in table and "| KITTI AP40, moderate |" in table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scratch"]["last"]["seeds"] == 2 and "AP50_std" in summary["scratch"]["last"]
    val_ap = read_csv(out / "val_ap.csv")
    assert sorted({r["run"] for r in val_ap}) == sorted(names) and len(val_ap) == 4 * 3
    curves = read_csv(out / "curves.csv")
    assert len(curves) == 4 * 101 and curves[0].keys() == {"run", "recall", "precision"}

    stage(
        "detection_pictures",
        *("--params", params, "--frames", out / "frames", "--split", out / "frame_split.csv"),
        *("--models", out / "models", "--out", out / "pictures"),
    )
    pictures = sorted((out / "pictures").iterdir())
    assert len(pictures) == 2 and all(p.suffix == ".png" for p in pictures)
    assert {p.stem for p in pictures} <= set(test_frames)
    with Image.open(pictures[0]) as picture:
        assert picture.height > picture.width / 1242 * 375 * 2 * 0.9  # two panels

    # A rerun with nothing changed resumes from the finished run and trains nothing more.
    model = torch.load(out / "models/scratch-s0/last.pt", weights_only=True)
    took = json.loads((out / "models/scratch-s0.json").read_text())["train_seconds"]
    saved = torch.load(out / "checkpoints/scratch-s0/state.pt", weights_only=True)
    assert 0 < saved["train_seconds"] <= took  # the time up to the last epoch's save
    capsys.readouterr()
    train(stage, params, out, "scratch")
    assert "scratch-s0: resuming after epoch 2" in capsys.readouterr().out
    again = torch.load(out / "models/scratch-s0/last.pt", weights_only=True)
    assert all(torch.equal(v, again["state_dict"][k]) for k, v in model["state_dict"].items())
    # Its training time is the first run's, not the moment the rerun took.
    rerun = json.loads((out / "models/scratch-s0.json").read_text())
    assert rerun["train_seconds"] >= saved["train_seconds"]


def test_init_from_a_darknet_file_checks_its_sha256(stage, params_file, tmp_path):
    """A Darknet file of one's own, pinned in pretrained.files, with the head carried over."""
    cfg = ROOT / yaml.safe_load(params_file.read_text())["detector"]["cfg"]
    torch.manual_seed(0)
    coco = build_darknet(cfg, num_classes=80)
    folder = tmp_path / "pretrained"
    folder.mkdir()
    write_weights(coco, folder / "coco.weights")
    digest = hashlib.sha256((folder / "coco.weights").read_bytes()).hexdigest()
    raw = yaml.safe_load(params_file.read_text())
    raw["pretrained"]["files"] = {"coco.weights": digest}
    raw["detector"]["init"].update(source="darknet", weights="coco.weights", head_classes=[2])
    params_file.write_text(yaml.safe_dump(raw))
    initialise(stage, params_file, tmp_path, folder)
    info = json.loads((tmp_path / "init.json").read_text())
    assert info == {
        "source": "darknet",
        "file_classes": 80,
        "file_convolutions": None,
        "head_classes": [2],
        "loaded_convolutions": 13,  # the prediction convs too, from the file's car rows
        "sha256": digest,
        "file": "coco.weights",
        "file_sha256": digest,
        "params": raw["detector"]["init"],
    }
    assert (tmp_path / "init.weights").read_bytes() == (folder / "coco.weights").read_bytes()

    raw["pretrained"]["files"] = {"coco.weights": "0" * 64}
    params_file.write_text(yaml.safe_dump(raw))
    (tmp_path / "init.weights").unlink()
    with pytest.raises(ValueError, match="pretrained.files pins 0000"):
        initialise(stage, params_file, tmp_path, folder)
    assert not (tmp_path / "init.weights").exists()
    raw["pretrained"]["files"] = {"other.weights": digest}
    params_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="detector.init.weights needs coco.weights"):
        initialise(stage, params_file, tmp_path, folder)

    # A file that does not fit the cfg: the error names the file, not a temporary copy.
    short = (folder / "coco.weights").read_bytes()[:-400]
    (folder / "short.weights").write_bytes(short)
    raw["pretrained"]["files"] = {"short.weights": hashlib.sha256(short).hexdigest()}
    raw["detector"]["init"].update(weights="short.weights", head_classes=None)
    params_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=rf"^{folder / 'short.weights'}: truncated"):
        initialise(stage, params_file, tmp_path, folder)
    assert not (tmp_path / "init.weights").exists()


def test_random_init_writes_the_weights_of_a_seeded_model(stage, params_file, tmp_path):
    cfg = ROOT / yaml.safe_load(params_file.read_text())["detector"]["cfg"]
    torch.manual_seed(3)
    reference = build_darknet(cfg, num_classes=80)
    write_weights(reference, tmp_path / "reference.weights")
    raw = yaml.safe_load(params_file.read_text())
    raw["detector"]["init"].update(source="random", seed=3, head_classes=None)
    params_file.write_text(yaml.safe_dump(raw))
    initialise(stage, params_file, tmp_path)
    info = json.loads((tmp_path / "init.json").read_text())
    assert (info["source"], info["file_classes"], info["loaded_convolutions"]) == ("random", 80, 11)
    assert (tmp_path / "init.weights").read_bytes() == (tmp_path / "reference.weights").read_bytes()


def test_a_new_confidence_threshold_leaves_a_finished_run_as_it_is(
    stage, params_file, tmp_path, capsys
):
    """The confidence threshold is evaluation's: training neither reads nor keys on it, so a
    finished run under a new one resumes after its last epoch and trains nothing. The NMS of
    the val AP that picks the best epoch is training's: a new one trains the run anew."""
    run_data_stages(stage, params_file, tmp_path)
    train(stage, params_file, tmp_path, "scratch")
    history = (tmp_path / "history/scratch-s0.csv").read_bytes()
    best = torch.load(tmp_path / "models/scratch-s0/best.pt", weights_only=True)
    raw = yaml.safe_load(params_file.read_text())
    raw["detector"]["evaluate"].update(conf_threshold=0.002)
    params_file.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    train(stage, params_file, tmp_path, "scratch")
    out = capsys.readouterr().out
    assert "resuming after epoch 2" in out and "epoch 1/2" not in out
    assert (tmp_path / "history/scratch-s0.csv").read_bytes() == history
    again = torch.load(tmp_path / "models/scratch-s0/best.pt", weights_only=True)
    assert again["epoch"] == best["epoch"] and again["val"] == best["val"]

    raw["detector"]["evaluate"].update(nms_iou=0.3)
    params_file.write_text(yaml.safe_dump(raw))
    train(stage, params_file, tmp_path, "scratch")
    out = capsys.readouterr().out
    assert "differing: detector.nms_iou" in out and "epoch 1/2" in out
    stale = [p.name for p in (tmp_path / "checkpoints").iterdir() if ".stale-" in p.name]
    assert len(stale) == 1 and stale[0].startswith("scratch-s0.stale-")
    anew = read_csv(tmp_path / "history/scratch-s0.csv")
    (tmp_path / "first.csv").write_bytes(history)
    first = read_csv(tmp_path / "first.csv")
    # The same seed trains the same weights: the same losses, the val AP under the new NMS.
    assert [r["train_total"] for r in anew] == [r["train_total"] for r in first]


def test_a_change_of_frames_is_not_resumed_even_under_the_same_paths(
    stage, params_file, tmp_path, capsys
):
    """The key holds the letterboxed pixels and boxes loaded, not the frames folder's path."""
    run_data_stages(stage, params_file, tmp_path)
    train(stage, params_file, tmp_path, "scratch")
    stem = next(r["frame"] for r in read_csv(tmp_path / "split.csv") if r["split"] == "train")
    image = next((tmp_path / "frames/images").glob(f"{stem}.*"))
    with Image.open(image) as picture:
        picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(image)
    capsys.readouterr()
    train(stage, params_file, tmp_path, "scratch")
    out = capsys.readouterr().out
    assert "(differing: frames)" in out and "resuming" not in out.replace("not resumed", "")


def test_a_rectangular_input_trains_evaluates_draws_and_detects(stage, params_file, tmp_path):
    """`img_size: [width, height]`: frames keep their aspect in a 192x64 letterbox, boxes come
    back to frame pixels, and every detector stage and `kitti-detect` work at that shape."""
    out = tmp_path
    run_data_stages(stage, params_file, out)
    raw = yaml.safe_load(params_file.read_text())
    raw["detector"]["img_size"] = [192, 64]
    params = out / "rectangle.yaml"
    params.write_text(yaml.safe_dump(raw))
    det = load_params(params).detector

    test = load_split(out / "frames", out / "frame_split.csv", "test", det.classes, det.img_size)
    assert test.images.shape[1:] == (3, 64, 192)
    # 1242x375 -> min(192 / 1242, 64 / 375) = 192 / 1242: 192 x 58 rows, 3 rows of padding above.
    assert test.letterboxes[0] == (192 / 1242, 58 / 375, 0.0, 3.0)
    for i, stem in enumerate(test.stems):
        labels = read_yolo_labels(out / "frames/labels" / f"{stem}.txt", 3, 0.01)
        cars = [denormalise(x.cx, x.cy, x.w, x.h, 1242, 375) for x in labels if x.class_id == 0]
        target = test.targets[i]
        back = test.to_frame(i, target[target[:, 0] >= 0, 1:])
        expected = torch.tensor([clip(c, 1242, 375) for c in cars]).reshape(-1, 4)
        assert torch.allclose(back, expected, atol=0.01), stem

    initialise(stage, params, out)
    for run in RUNS:
        train(stage, params, out, run)
        evaluate(stage, params, out, run)
        model, info = load_detector(out / f"models/{run}-s0/best.pt")
        assert tuple(info["img_size"]) == (192, 64)
        metrics = json.loads((out / f"metrics/{run}-s0.json").read_text())
        assert metrics["test_frames"] == len(test.stems)
        assert 0 <= metrics["best"]["Car"]["AP50"] <= 1
    stage(
        "detection_pictures",
        *("--params", params, "--frames", out / "frames", "--split", out / "frame_split.csv"),
        *("--models", out / "models", "--out", out / "pictures"),
    )
    assert len(list((out / "pictures").glob("*.png"))) == 2

    frame = next((out / "frames/images").glob(f"{test.stems[0]}.*"))
    detect_main(
        [str(frame), "--model", str(out / "models/transfer-s0/best.pt")]
        + ["--out", str(out / "detected"), "--conf", "0.01"]
    )
    rows = read_csv(out / "detected/detections.csv")
    model, _ = load_detector(out / "models/transfer-s0/best.pt")
    expected = detect_frames(model, [read_image(frame)], (192, 64), 0.01, 0.45)[0]
    assert len(rows) == len(expected)
    assert all(0 <= float(r["x1"]) <= float(r["x2"]) <= 1242 for r in rows)
    assert all(0 <= float(r["y1"]) <= float(r["y2"]) <= 375 for r in rows)


def test_frames_the_crop_stage_skipped_never_reach_the_detector(stage, params_file, tmp_path):
    """With `crop.on_bad_input: skip`, a frame with an unreadable image, one with a malformed
    label line and an image without labels are left out of the detector's frame split, with
    their reasons, and the detector stages train on the rest."""
    raw = yaml.safe_load(params_file.read_text())
    raw["crop"]["on_bad_input"] = "skip"
    params = tmp_path / "skip.yaml"
    params.write_text(yaml.safe_dump(raw))
    stage("synthesize", "--params", params, "--out", tmp_path / "frames")
    images = sorted((tmp_path / "frames/images").iterdir())
    images[0].write_bytes(b"not a png")
    label = tmp_path / "frames/labels" / f"{images[1].stem}.txt"
    label.write_text(label.read_text() + "0 0.5 0.5 0.1\n")
    (tmp_path / "frames/labels" / f"{images[2].stem}.txt").unlink()
    stage("crop", "--params", params, "--frames", tmp_path / "frames", "--out", tmp_path / "crops")
    stage(
        "split",
        *("--params", params, "--crops", tmp_path / "crops", "--frames", tmp_path / "frames"),
        *("--out", tmp_path / "split.csv", "--frame-split", tmp_path / "frame_split.csv"),
    )
    left_out = {
        r["frame"]: r["reason"]
        for r in read_csv(tmp_path / "frame_split.csv")
        if r["split"] == "left_out"
    }
    assert left_out == {
        images[0].stem: "unreadable_image",
        images[1].stem: "bad_label",
        images[2].stem: "image_without_label",
    }
    det = load_params(params).detector
    loaded = []
    for split in ("train", "val", "test"):
        data = load_split(
            tmp_path / "frames", tmp_path / "frame_split.csv", split, det.classes, 128
        )
        loaded += data.stems
    assert sorted(loaded) == sorted(p.stem for p in images[3:])
    train(stage, params, tmp_path, "scratch")
    assert (tmp_path / "models/scratch-s0/best.pt").exists()


def test_a_split_file_that_is_no_frame_split_is_refused_by_name(tmp_path):
    (tmp_path / "frames/images").mkdir(parents=True)
    (tmp_path / "frames/classes.txt").write_text("Car\n")
    Image.new("RGB", (64, 32)).save(tmp_path / "frames/images/000000.png")
    (tmp_path / "crops.csv").write_text("crop,class,frame,split\nimages/a.png,Car,000000,test\n")
    with pytest.raises(ValueError, match=r"crops.csv: header .* is not a frame split's"):
        load_split(tmp_path / "frames", tmp_path / "crops.csv", "test", ("Car",), 64)
    (tmp_path / "split.csv").write_text("frame,split,drive,reason\n000000,test,,\n000001,test,,\n")
    with pytest.raises(ValueError, match=r"split.csv:3: frame '000001' has no image"):
        load_split(tmp_path / "frames", tmp_path / "split.csv", "test", ("Car",), 64)
