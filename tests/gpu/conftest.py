"""The GPU tests: each needs a CUDA device, and each records what it measured.

`record(name, **figures)` keeps a test's figures; at the end of the session they go, with each
test's outcome, the device and torch's version, to the JSON file named by `--gpu-results`
(bench/gpu_check.sh: bench/results/gpu_tests_cuda.json; the option is tests/conftest.py's).
"""

import json
from pathlib import Path

import pytest
import torch

FIGURES: dict[str, dict] = {}
OUTCOMES: dict[str, str] = {}


@pytest.fixture
def record(request):
    def keep(**figures):
        FIGURES.setdefault(request.node.name, {}).update(figures)

    return keep


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        OUTCOMES[report.nodeid.rsplit("::", 1)[-1]] = report.outcome


def pytest_sessionfinish(session):
    path = session.config.getoption("--gpu-results")
    if path is None or not torch.cuda.is_available():
        return
    out = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "tests": {name: {"outcome": o, **FIGURES.get(name, {})} for name, o in OUTCOMES.items()},
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=2) + "\n")
