"""bench/gpu_check.sh's dry run: on a machine without CUDA it collects the GPU tests and prints
every command the check would run, the study's stages among them."""

import os
import subprocess
import sys

from .conftest import ROOT


def test_the_gpu_check_dry_run_collects_its_tests_and_lists_the_study(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "bench/gpu_check.sh"), "--dry-run"],
        env={**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    names = [line for line in out.splitlines() if line.startswith("tests/gpu/test_cuda.py::")]
    assert len(names) == 6, out[:2000]
    assert "+ " + sys.executable + " bench/step_ops.py --device cuda" in out
    stages = [line.split(":")[0] for line in out.splitlines() if ": " + sys.executable in line]
    for stage in ("train_detector@transfer-0", "train_detector_scratch@0", "report"):
        assert stage in stages, stages
    assert "train_detector@transfer-1" not in stages  # one seed, so that a run fits
