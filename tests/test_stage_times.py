"""bench/stage_times.py: each stage's seconds from DVC's output, and make demo's estimate."""

import importlib.util
import json
import sys

import pytest

from .conftest import ROOT, dvc_stages

spec = importlib.util.spec_from_file_location("stage_times", ROOT / "bench/stage_times.py")
stage_times = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stage_times)

# A stand-in for `dvc repro`: two stages, a matrix item of one, the pauses between their lines.
FAKE_DVC = """
import time
print("Running stage 'train@a':", flush=True)
time.sleep(0.3)
print("> python stages/train.py", flush=True)
print("Running stage 'train@b':", flush=True)
time.sleep(0.1)
print("Running stage 'report':", flush=True)
time.sleep(0.2)
print("Use `dvc push` to send your updates to remote storage.")
"""


def test_a_stage_lasts_from_its_line_to_the_next_and_items_add_up(tmp_path):
    stages, total, code = stage_times.time_stages([sys.executable, "-c", FAKE_DVC], tmp_path)
    assert code == 0 and [name for name, _ in stages] == ["train@a", "train@b", "report"]
    seconds = dict(stages)
    assert seconds["train@a"] == pytest.approx(0.3, abs=0.15)
    assert seconds["train@b"] == pytest.approx(0.1, abs=0.15)
    assert seconds["report"] == pytest.approx(0.2, abs=0.15)
    assert sum(seconds.values()) <= total
    summed = stage_times.summed_by_stage(stages)
    assert summed == {"train": seconds["train@a"] + seconds["train@b"], "report": seconds["report"]}


def test_params_to_set_make_it_a_dvc_experiment():
    assert stage_times.dvc_command("dvc", [], True) == ["dvc", "repro", "--force"]
    assert stage_times.dvc_command("dvc", ["a.b=1", "c=2"], False) == [
        "dvc",
        *("exp", "run", "-S", "a.b=1", "-S", "c=2"),
    ]


def test_the_estimate_scales_the_reference_run_by_the_probes(tmp_path, monkeypatch):
    reference = tmp_path / "reference.json"
    cpu = {"model_name": "Slow CPU", "family": 25, "model": 1, "native_bf16": False}
    reference.write_text(json.dumps({"total_seconds": 600.0, "probe_seconds": 8.0, "cpu": cpu}))
    # This CPU's probe takes half the reference's: 600 s become 300 s, 5 minutes.
    monkeypatch.setattr(stage_times, "probe_seconds", lambda runs=2: 4.0)
    monkeypatch.setattr(stage_times, "cpu_facts", lambda: {**cpu, "native_bf16": True})
    text = stage_times.estimate(reference)
    assert "about 5 minutes" in text and "10.0 on the reference CPU, Slow CPU (family 25)" in text
    assert "native bfloat16" in text


def test_the_committed_reference_ran_every_stage():
    results = json.loads((ROOT / "bench/results/stage_times_demo_float32.json").read_text())
    assert results["exit_code"] == 0 and not results["cpu"]["native_bf16"]
    ran = {s["stage"].split("@")[0] for s in results["stages"]}
    expanded = {name.split("@")[0] for name in dvc_stages()}
    assert ran == expanded
    # The stages add up to the whole but DVC's start before the first of them.
    assert 0 <= results["total_seconds"] - sum(s["seconds"] for s in results["stages"]) < 10
