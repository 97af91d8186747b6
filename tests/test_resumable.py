import os
import shutil
import subprocess
import sys

import pytest
import torch

from kitti_pipeline.core.cli import parse_stage
from kitti_pipeline.core.resumable import Resumable, differing_fields
from kitti_pipeline.core.version import imported_modules

from .conftest import ROOT

KEY = {"run": "a", "train": {"lr": 0.001, "epochs": 3}, "split": "abc"}


def test_differing_fields_names_nested_keys():
    other = {"run": "a", "train": {"lr": 0.01, "epochs": 3, "amp": True}, "split": "abd"}
    assert differing_fields(KEY, other) == ["split", "train.amp", "train.lr"]
    assert differing_fields(KEY, dict(KEY)) == []
    assert differing_fields({"train": 1}, {"train": {"lr": 1}}) == ["train"]


def test_a_saved_state_resumes_under_the_same_key(tmp_path):
    run = Resumable(tmp_path / "run.pt", KEY, "v1")
    assert run.load() is None
    run.save({"epoch": 2, "weights": torch.arange(3)})
    saved = Resumable(tmp_path / "run.pt", dict(KEY), "v2").load()
    assert saved["epoch"] == 2 and torch.equal(saved["weights"], torch.arange(3))
    assert saved["key"] == KEY and saved["code_version"] == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


def test_a_checkpoint_of_other_inputs_is_moved_aside_not_deleted(tmp_path, capsys):
    Resumable(tmp_path / "run.pt", KEY, "v1").save({"epoch": 2})
    changed = {**KEY, "train": {"lr": 0.01, "epochs": 3}}
    assert Resumable(tmp_path / "run.pt", changed, "v1").load() is None
    assert not (tmp_path / "run.pt").exists()
    (stale,) = tmp_path.glob("run.pt.stale-*")
    assert torch.load(stale, weights_only=True)["epoch"] == 2
    out = capsys.readouterr().out
    assert "run.pt: not resumed, moved aside to" in out
    assert "made under other inputs (differing: train.lr)" in out
    # A second stale checkpoint does not replace the first.
    Resumable(tmp_path / "run.pt", KEY, "v1").save({"epoch": 1})
    Resumable(tmp_path / "run.pt", changed, "v1").load()
    assert len(list(tmp_path.glob("run.pt.stale-*"))) == 2


def test_an_unreadable_checkpoint_is_moved_aside(tmp_path, capsys):
    (tmp_path / "run.pt").write_bytes(b"not a checkpoint")
    assert Resumable(tmp_path / "run.pt", KEY, "v1").load() is None
    (stale,) = tmp_path.glob("run.pt.stale-*")
    assert stale.read_bytes() == b"not a checkpoint"
    assert "cannot be read" in capsys.readouterr().out


def test_a_folder_of_other_inputs_is_moved_aside_whole(tmp_path):
    folder = tmp_path / "transfer"
    run = Resumable(folder / "last.pt", KEY, "v1", folder)
    folder.mkdir()
    run.save({"epoch": 5}, "epoch_0005.pt")
    run.save({"epoch": 6})
    assert run.load()["epoch"] == 6
    assert Resumable(folder / "last.pt", {**KEY, "split": "x"}, "v1", folder).load() is None
    assert not folder.exists()
    (stale,) = tmp_path.glob("transfer.stale-*")
    assert sorted(p.name for p in stale.iterdir()) == ["epoch_0005.pt", "last.pt"]


def test_a_folder_without_its_state_is_moved_aside(tmp_path):
    folder = tmp_path / "scratch"
    folder.mkdir()
    (folder / "epoch_0005.pt").write_bytes(b"x")
    assert Resumable(folder / "last.pt", KEY, "v1", folder).load() is None
    assert not folder.exists() and len(list(tmp_path.glob("scratch.stale-*"))) == 1
    folder.mkdir()  # an empty folder holds nothing to lose
    assert Resumable(folder / "last.pt", KEY, "v1", folder).load() is None
    assert folder.is_dir()


def test_only_the_writer_moves_files(tmp_path):
    Resumable(tmp_path / "run.pt", KEY, "v1").save({"epoch": 2})
    other = {**KEY, "run": "b"}
    assert Resumable(tmp_path / "run.pt", other, "v1", writer=False).load() is None
    assert (tmp_path / "run.pt").exists()


def test_parse_stage_takes_required_paths_and_loads_params(params_file):
    args, params = parse_stage(
        "doc",
        ["--params", str(params_file), "--init-info", "i.json", "--seed", "3"],
        init_info="the init metrics",
        seed=(int, "a seed"),
    )
    assert args.init_info == "i.json" and args.seed == 3
    assert params.data.classes == ("Car", "Person", "Cyclist")
    with pytest.raises(SystemExit):
        parse_stage("doc", ["--params", str(params_file)], out="a path")


def code_hashes(package_parent, *modules):
    """`code_hash` of each module, computed from the package copy under `package_parent`."""
    script = (
        "import sys; from kitti_pipeline.core.version import code_hash; "
        "print(' '.join(code_hash(m) for m in sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *modules],
        cwd=package_parent,
        env={**os.environ, "PYTHONPATH": str(package_parent)},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def test_the_resume_key_holds_the_code_the_run_executes_not_the_whole_library(tmp_path):
    """An edit to the report leaves both studies' runs resumable, and so does a new comment or
    docstring in the YOLO loss; an edit to its code keeps the classifier's and sets the
    detector's aside."""
    shutil.copytree(ROOT / "kitti_pipeline", tmp_path / "kitti_pipeline")
    runs = ("kitti_pipeline.detect.run", "kitti_pipeline.classify.train")
    before = code_hashes(tmp_path, *runs)
    with (tmp_path / "kitti_pipeline/report/document.py").open("a") as f:
        f.write("\n# an edit\n")
    assert code_hashes(tmp_path, *runs) == before
    yolo = tmp_path / "kitti_pipeline/detect/yolo.py"
    text = yolo.read_text()
    assert '    """The YOLOv3 loss over all scales' in text
    yolo.write_text(
        text.replace(
            '    """The YOLOv3 loss over all', '    # Why it is so.\n    """The loss over all'
        )
    )
    assert code_hashes(tmp_path, *runs) == before  # a comment and a docstring execute nothing
    yolo.write_text(
        text.replace("terms = {name: value / batch", "terms = {name: value / (batch + 0)")
    )
    detector, classifier = code_hashes(tmp_path, *runs)
    assert detector != before[0] and classifier == before[1]
    files = {p.relative_to(ROOT).as_posix() for p in imported_modules("kitti_pipeline.detect.run")}
    assert "kitti_pipeline/detect/yolo.py" in files and "kitti_pipeline/detect/__init__.py" in files
    assert not any(
        f.startswith(("kitti_pipeline/report/", "kitti_pipeline/classify/")) for f in files
    )
