"""Commands and stages end on bad input with one line naming the problem, exit status 1."""

import subprocess
import sys
from pathlib import Path

from PIL import Image

from .conftest import ROOT
from .test_subset import CAR, make_training


def run(*args, env=None):
    return subprocess.run([*map(str, args)], capture_output=True, text=True, cwd=ROOT, env=env)


def test_a_command_prints_one_line_and_the_traceback_on_request(tmp_path):
    training = make_training(tmp_path / "training", count=2)
    (training / "label_2" / "000001.txt").write_text(CAR + CAR.replace("587.01", "nan"))
    command = [Path(sys.executable).parent / "kitti-subset", "--training", training]
    done = run(*command, "--out", tmp_path / "subset", "--frames", 2)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("kitti-subset: error: ")
    assert "label_2/000001.txt:2: x1 'nan' is not a finite number" in done.stderr
    debug = run(*command, "--out", tmp_path / "subset", "--frames", 2, "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "LabelError" in debug.stderr
    assert not (tmp_path / "subset").exists()


def test_a_stage_reports_bad_input_in_one_line(tmp_path, params_file):
    script = ROOT / "stages" / "crop.py"
    done = run(
        sys.executable,
        script,
        "--params",
        params_file,
        "--frames",
        tmp_path / "none",
        "--out",
        tmp_path / "crops",
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("crop.py: error: ")
    assert f"{tmp_path / 'none'}: no 'images/' folder" in lines[0]
    bad = tmp_path / "params.yaml"
    bad.write_text(params_file.read_text().replace("image_size: 32", "imag_size: 32"))
    done = run(
        sys.executable, script, "--params", bad, "--frames", tmp_path, "--out", tmp_path / "c"
    )
    assert done.returncode == 1 and "unknown key 'crop.imag_size'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_course_folder_as_it_comes_is_refused_in_one_line(tmp_path, params_file):
    """An ultralytics-style split tree and a folder without classes.txt each stop the crop stage
    with one line that names them, never '0 crops from 0 frames' and exit status 0."""
    frames = tmp_path / "course"
    for sub in ("images/train", "labels/train"):
        (frames / sub).mkdir(parents=True)
    Image.new("RGB", (64, 32)).save(frames / "images/train/000000.png")
    (frames / "labels/train/000000.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    script = ROOT / "stages" / "crop.py"
    command = [sys.executable, script, "--params", params_file, "--frames", frames]
    done = run(*command, "--out", tmp_path / "crops")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert f"{frames / 'images/train'}/: a split tree" in done.stderr
    assert not (tmp_path / "crops").exists()

    for sub in ("images", "labels"):
        (frames / sub / "train").rename(tmp_path / f"{sub}-train")
        (frames / sub).rmdir()
        (tmp_path / f"{sub}-train").rename(frames / sub)
    done = run(*command, "--out", tmp_path / "crops")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert f"{frames / 'classes.txt'}: no such file" in done.stderr
    advice = done.stderr.split("write it with: ")[1].split(" (--debug")[0]
    assert advice == f"printf 'Car\\nPerson\\nCyclist\\n' > {frames / 'classes.txt'}"
    subprocess.run(["bash", "-c", advice], check=True)  # the advice, followed, is enough
    done = run(*command, "--out", tmp_path / "crops")
    assert done.returncode == 0, done.stderr
    assert "crop: 1 crops from 1 frames" in done.stdout


def test_a_folder_without_frames_is_refused(tmp_path, params_file):
    for sub in ("images", "labels"):
        (tmp_path / "empty" / sub).mkdir(parents=True)
    (tmp_path / "empty/classes.txt").write_text("Car\nPerson\nCyclist\n")
    script = ROOT / "stages" / "crop.py"
    done = run(
        sys.executable,
        script,
        "--params",
        params_file,
        "--frames",
        tmp_path / "empty",
        "--out",
        tmp_path / "crops",
    )
    assert done.returncode == 1 and "no frames: no image in images/" in done.stderr
