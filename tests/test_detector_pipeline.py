"""The detector stages, end to end, on the shrunk params."""

import hashlib
import json

import pytest
import torch
import yaml
from PIL import Image

from kitti_pipeline.core.files import read_csv
from kitti_pipeline.detect.darknet import build_darknet, write_weights

from .conftest import ROOT, run_data_stages

pytestmark = pytest.mark.slow
RUNS = ("transfer", "scratch")


def initialise(stage, params, out):
    stage(
        "init_detector",
        "--params",
        params,
        "--out",
        out / "init.weights",
        "--metrics",
        out / "init.json",
    )


def train(stage, params, out, run):
    stage(
        "train_detector",
        "--params",
        params,
        "--run-name",
        run,
        "--frames",
        out / "frames",
        "--split",
        out / "split.csv",
        # Scratch reads no init files, as its stage in dvc.yaml passes none.
        *(
            ("--init", out / "init.weights", "--init-info", out / "init.json")
            if run == "transfer"
            else ()
        ),
        "--checkpoints",
        out / f"checkpoints/{run}",
        "--model",
        out / f"models/{run}",
        "--provenance",
        out / f"models/{run}.json",
        "--history",
        out / f"history/{run}.csv",
    )


def evaluate(stage, params, out, run):
    stage(
        "evaluate_detector",
        "--params",
        params,
        "--frames",
        out / "frames",
        "--split",
        out / "split.csv",
        "--model",
        out / f"models/{run}",
        "--metrics",
        out / f"metrics/{run}.json",
        "--pr",
        out / f"pr/{run}.csv",
        "--matches",
        out / f"matches/{run}.json",
    )


def test_detector_stages(stage, params_file, tmp_path, capsys):
    out = tmp_path
    run_data_stages(stage, params_file, out)
    initialise(stage, params_file, out)
    info = json.loads((out / "init.json").read_text())
    # The small cfg has 13 convolutions; all but the two prediction convs carry over.
    assert info["source"] == "synthetic" and info["file_classes"] == 10
    assert info["loaded_convolutions"] == 11
    assert info["sha256"] == hashlib.sha256((out / "init.weights").read_bytes()).hexdigest()
    assert 0 <= info["held_out_mAP50"] <= 1

    capsys.readouterr()
    for run in RUNS:
        train(stage, params_file, out, run)
        evaluate(stage, params_file, out, run)
    assert "transfer: loaded 11 convolutions" in capsys.readouterr().out

    split = read_csv(out / "split.csv")
    test_frames = sorted({r["frame"] for r in split if r["split"] == "test"})
    # Cars in the test frames, counted from the label files themselves.
    cars = sum(
        line.split()[0] == "0"
        for stem in test_frames
        for line in (out / "frames/labels" / f"{stem}.txt").read_text().splitlines()
    )
    for run in RUNS:
        history = read_csv(out / f"history/{run}.csv")
        assert [int(r["epoch"]) for r in history] == [1, 2]  # eval_every 1, epochs 2
        assert {"train_total", "val_loss", "precision", "recall", "AP50", "F1"} <= set(history[0])
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
        assert "code_version" in provenance and "code_version" not in models["best"]
        metrics = json.loads((out / f"metrics/{run}.json").read_text())
        assert metrics["test_frames"] == len(test_frames)
        assert metrics["best"]["epoch"] == int(best_epoch) and metrics["last"]["epoch"] == 2
        car = metrics["last"]["Car"]
        assert car["ground_truths"] == cars
        assert set(car["kitti_AP40"]) == {"easy", "moderate", "hard"}
        assert all(0 <= car[k] <= 1 for k in ("precision", "recall", "AP50", "F1", "AP50_95"))
        pr = read_csv(out / f"pr/{run}.csv")
        assert len(pr) == 101 and float(pr[0]["recall"]) == 0 and float(pr[-1]["recall"]) == 1
        best = metrics["best"]["Car"]
        for key, value in (("AP50", best["AP50"]), ("F1", best["F1"])):
            assert best["ci95"][key]["low"] <= value <= best["ci95"][key]["high"], key
        assert set(best["ci95"]) == {"precision", "recall", "AP50", "F1"} | {
            f"kitti_AP40_{level}" for level in ("easy", "moderate", "hard")
        }
        matches = json.loads((out / f"matches/{run}.json").read_text())
        assert matches["stems"] == test_frames and matches["epoch"] == metrics["best"]["epoch"]
        assert sum(matches["AP50"]["truths"]) == cars

    stage(
        "compare_detectors",
        *("--params", params_file, "--transfer", out / "matches/transfer.json"),
        *("--scratch", out / "matches/scratch.json", "--out", out / "comparison.json"),
    )
    comparison = json.loads((out / "comparison.json").read_text())["transfer-scratch"]
    runs = {r: json.loads((out / f"metrics/{r}.json").read_text())["best"]["Car"] for r in RUNS}
    assert comparison["AP50"]["difference"] == pytest.approx(
        runs["transfer"]["AP50"] - runs["scratch"]["AP50"]
    )
    assert comparison["kitti_AP40_moderate"]["difference"] == pytest.approx(
        runs["transfer"]["kitti_AP40"]["moderate"] - runs["scratch"]["kitti_AP40"]["moderate"]
    )

    (out / "metrics/extra.json").write_text("{}")  # the report reads only the runs it names
    stage(
        "detector_report",
        "--params",
        params_file,
        "--runs",
        out / "metrics",
        "--comparison",
        out / "comparison.json",
        "--table",
        out / "t.md",
    )
    table = (out / "t.md").read_text()
    assert "| Yes | best |" in table and "| No | last | 2 |" in table
    assert "### Transfer against scratch" in table and "| KITTI AP40, moderate |" in table

    (out / "all_models").mkdir()
    for run in RUNS:
        (out / "all_models" / run).symlink_to(out / "models" / run)
    stage(
        "detection_pictures",
        "--params",
        params_file,
        "--frames",
        out / "frames",
        "--split",
        out / "split.csv",
        "--models",
        out / "all_models",
        "--out",
        out / "pictures",
    )
    pictures = sorted((out / "pictures").iterdir())
    assert len(pictures) == 2 and all(p.suffix == ".png" for p in pictures)
    assert {p.stem for p in pictures} <= set(test_frames)
    with Image.open(pictures[0]) as picture:
        assert picture.height > picture.width / 1242 * 375 * 2 * 0.9  # two panels

    # A rerun with nothing changed resumes from the finished run and trains nothing more.
    model = torch.load(out / "models/scratch/last.pt", weights_only=True)
    capsys.readouterr()
    train(stage, params_file, out, "scratch")
    assert "scratch: resuming after epoch 2" in capsys.readouterr().out
    again = torch.load(out / "models/scratch/last.pt", weights_only=True)
    assert all(torch.equal(v, again["state_dict"][k]) for k, v in model["state_dict"].items())


def test_init_from_a_darknet_file_checks_its_sha256(stage, params_file, tmp_path, capsys):
    torch.manual_seed(0)
    coco = build_darknet(ROOT / "cfg" / "yolov3-tiny-small.cfg", num_classes=80)
    write_weights(coco, tmp_path / "coco.weights")
    digest = hashlib.sha256((tmp_path / "coco.weights").read_bytes()).hexdigest()
    raw = yaml.safe_load(params_file.read_text())
    raw["detector"]["init"].update(
        source="darknet", weights=str(tmp_path / "coco.weights"), sha256=digest
    )
    params_file.write_text(yaml.safe_dump(raw))
    initialise(stage, params_file, tmp_path)
    info = json.loads((tmp_path / "init.json").read_text())
    assert info == {
        "source": "darknet",
        "file_classes": 80,
        "file_convolutions": None,
        "loaded_convolutions": 11,
        "sha256": digest,
        "params": raw["detector"]["init"],
    }
    assert (tmp_path / "init.weights").read_bytes() == (tmp_path / "coco.weights").read_bytes()

    raw["detector"]["init"]["sha256"] = "0" * 64
    params_file.write_text(yaml.safe_dump(raw))
    (tmp_path / "init.weights").unlink()
    with pytest.raises(ValueError, match="sha256 is .*, expected 0000"):
        initialise(stage, params_file, tmp_path)
    assert not (tmp_path / "init.weights").exists()

    # A file that does not fit the cfg: the error names the user's file, not a temporary copy.
    (tmp_path / "short.weights").write_bytes((tmp_path / "coco.weights").read_bytes()[:-400])
    raw["detector"]["init"].update(weights=str(tmp_path / "short.weights"), sha256=None)
    params_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'short.weights'}: truncated"):
        initialise(stage, params_file, tmp_path)
    assert not (tmp_path / "init.weights").exists()


def test_random_init_writes_the_weights_of_a_seeded_model(stage, params_file, tmp_path):
    torch.manual_seed(3)
    reference = build_darknet(ROOT / "cfg" / "yolov3-tiny-small.cfg", num_classes=80)
    write_weights(reference, tmp_path / "reference.weights")
    raw = yaml.safe_load(params_file.read_text())
    raw["detector"]["init"].update(source="random", seed=3)
    params_file.write_text(yaml.safe_dump(raw))
    initialise(stage, params_file, tmp_path)
    info = json.loads((tmp_path / "init.json").read_text())
    assert (info["source"], info["file_classes"], info["loaded_convolutions"]) == ("random", 80, 11)
    assert (tmp_path / "init.weights").read_bytes() == (tmp_path / "reference.weights").read_bytes()


def test_new_post_processing_redoes_the_val_history_of_a_finished_run(
    stage, params_file, tmp_path, capsys
):
    run_data_stages(stage, params_file, tmp_path)
    raw = yaml.safe_load(params_file.read_text())
    raw["detector"]["train"].update(epochs=3, keep_checkpoints=True)
    params_file.write_text(yaml.safe_dump(raw))
    train(stage, params_file, tmp_path, "scratch")
    old = read_csv(tmp_path / "history/scratch.csv")
    names = sorted(p.name for p in (tmp_path / "checkpoints/scratch").iterdir())
    assert names == ["epoch_0001.pt", "epoch_0002.pt", "epoch_0003.pt", "state.pt"]

    raw["detector"]["evaluate"].update(conf_threshold=0.002, nms_iou=0.3)
    params_file.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    train(stage, params_file, tmp_path, "scratch")
    out = capsys.readouterr().out
    assert "resuming after epoch 3" in out and "3 evaluations redone" in out
    redone = read_csv(tmp_path / "history/scratch.csv")
    assert redone != old
    assert [r["train_total"] for r in redone] == [r["train_total"] for r in old]

    # The same history as a run trained from the start under the new params.
    fresh = tmp_path / "fresh"
    for name in ("frames", "split.csv"):
        (fresh / name).parent.mkdir(parents=True, exist_ok=True)
        (fresh / name).symlink_to(tmp_path / name)
    train(stage, params_file, fresh, "scratch")
    assert read_csv(fresh / "history/scratch.csv") == redone
    model = torch.load(tmp_path / "models/scratch/best.pt", weights_only=True)
    again = torch.load(fresh / "models/scratch/best.pt", weights_only=True)
    assert model["epoch"] == again["epoch"] and model["val"] == again["val"]


def test_new_post_processing_without_kept_weights_trains_the_run_anew(
    stage, params_file, tmp_path, capsys
):
    """Without every evaluated epoch's weights the val history cannot be redone: the finished
    run is moved aside, not resumed, and trains again under the new post-processing."""
    run_data_stages(stage, params_file, tmp_path)
    train(stage, params_file, tmp_path, "scratch")
    first = read_csv(tmp_path / "history/scratch.csv")
    raw = yaml.safe_load(params_file.read_text())
    raw["detector"]["evaluate"].update(conf_threshold=0.002, nms_iou=0.3)
    params_file.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    train(stage, params_file, tmp_path, "scratch")
    out = capsys.readouterr().out
    assert "cannot be redone without every evaluated epoch's weights" in out
    assert "resuming" not in out.replace("not resumed", "")
    stale = [p.name for p in (tmp_path / "checkpoints").iterdir() if ".stale-" in p.name]
    assert len(stale) == 1 and stale[0].startswith("scratch.stale-")
    again = read_csv(tmp_path / "history/scratch.csv")
    # Trained anew: the same weights (same seed), so the same losses; val metrics of the new params.
    assert [r["train_total"] for r in again] == [r["train_total"] for r in first]
    assert again != first


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
