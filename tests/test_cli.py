"""Commands and stages end on bad input with one line naming the problem, exit status 1."""

import subprocess
import sys
from pathlib import Path

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
    assert f"{tmp_path / 'none'}/classes.txt" in lines[0]
    bad = tmp_path / "params.yaml"
    bad.write_text(params_file.read_text().replace("image_size: 32", "imag_size: 32"))
    done = run(
        sys.executable, script, "--params", bad, "--frames", tmp_path, "--out", tmp_path / "c"
    )
    assert done.returncode == 1 and "unknown key 'crop.imag_size'" in done.stderr
    assert "Traceback" not in done.stderr
