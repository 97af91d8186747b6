"""Shared fixtures: the real params.yaml shrunk for tests, and a way to run real stages."""

import functools
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from kitti_pipeline.core.profiles import merge_overrides, read_profile
from kitti_pipeline.pretrain.real_weights import fetch_pretrained

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("resnet18", "mobilenet_v2")  # params.yaml's classifier.archs, which no profile changes


def pytest_addoption(parser):
    parser.addoption("--gpu-results", default=None, help="JSON file for tests/gpu's figures")


# The files that run the whole pipeline under DVC, longest first: collected first, so that
# pytest-xdist starts them first and the other files fill the other workers meanwhile, instead
# of one of them running alone at the end.
LONGEST = ("test_pipeline.py", "test_study_profile.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return (LONGEST.index(name) if name in LONGEST else len(LONGEST), str(item.path))

    items.sort(key=rank)  # stable: each file's tests keep their order


def pytest_configure(config):
    """Under pytest-xdist (`make test` runs a worker per core), each worker's torch, and the
    stage processes it starts, get that worker's share of the cores: workers that each spin a
    thread per core of the machine slow one another down."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def dvc_stages() -> set[str]:
    """Every stage dvc.yaml expands to, matrix items included, as DVC names them."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        return {stage.addressing for stage in repo.index.stages}


def shrink(raw: dict) -> dict:
    """The repo's params.yaml with the `ci` profile applied: few frames, tiny crops and images."""
    merge_overrides(raw, read_profile("ci", ROOT / "profiles"))
    return raw


@pytest.fixture
def params_file(tmp_path) -> Path:
    raw = shrink(yaml.safe_load((ROOT / "params.yaml").read_text()))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@functools.cache
def pretrained_folder() -> Path:
    """The real pretrained files params.yaml pins, fetched once per test session into a folder,
    as the `pretrained@<name>` stages write them into models/pretrained."""
    folder = Path(tempfile.mkdtemp(prefix="pretrained-"))
    files = yaml.safe_load((ROOT / "params.yaml").read_text())["pretrained"]["files"]
    for name, digest in files.items():
        path, _ = fetch_pretrained(name, digest)
        (folder / name).symlink_to(path)
    return folder


def run_stage(name: str, *args: str) -> None:
    """Run `stages/<name>.py` in this process, as `dvc repro` would run it in a subprocess.

    The init stages get `--pretrained` the session's `pretrained_folder` unless given one.
    """
    if name in ("init_weights", "init_detector") and "--pretrained" not in args:
        args = (*args, "--pretrained", pretrained_folder())
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([str(a) for a in args])


@pytest.fixture
def stage():
    return run_stage


def run_pipeline_in_process(repo: Path) -> list[str]:
    """Every stage of `repo`'s dvc.yaml, as DVC expands it under the repo's params, run in this
    process in an order `dvc repro` could take: what `dvc repro` runs, without a Python and a
    torch import per stage, which is most of a small stage's time. Returns the stages run."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        graph = dvc_repo.index.graph  # edges run from a stage to the stages it depends on
        stages = [(s.name, s.cmd) for s in reversed(list(nx.topological_sort(graph)))]
    with pytest.MonkeyPatch.context() as monkey:
        monkey.chdir(repo)
        for _, command in stages:
            script, *args = shlex.split(command)[1:]  # python stages/<name>.py ...
            run_stage(Path(script).stem, *args)
    return [name for name, _ in stages]


def run_data_stages(stage, params, out):
    """The data stages into `out`: frames/, crops/, split.csv, frame_split.csv, dataset.json
    and crops.png."""
    stage("synthesize", "--params", params, "--out", out / "frames")
    stage("crop", "--params", params, "--frames", out / "frames", "--out", out / "crops")
    stage(
        "split",
        *("--params", params, "--crops", out / "crops", "--frames", out / "frames"),
        *("--out", out / "split.csv", "--frame-split", out / "frame_split.csv"),
    )
    stage(
        "dataset_report",
        "--params",
        params,
        "--crops",
        out / "crops",
        "--split",
        out / "split.csv",
        "--frame-split",
        out / "frame_split.csv",
        "--metrics",
        out / "dataset.json",
        "--figure",
        out / "crops.png",
    )


PROJECT_FILES = (
    ".gitignore",
    "dvc.yaml",
    "params.yaml",
    "stages",
    "kitti_pipeline",
    "cfg",
    "profiles",
    "experiments",
)


def copy_project(repo: Path) -> None:
    """The files `dvc repro` needs, copied into `repo` as a clone would hold them."""
    repo.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        copy = shutil.copytree if src.is_dir() else shutil.copy
        copy(src, repo / name)
    (repo / "reports").mkdir()
    shutil.copy(ROOT / "reports/published.yaml", repo / "reports")


def project_runner(repo: Path, **env_vars: str):
    """`run(*cmd, cwd=repo)`: a command in the test's environment (this venv's tools first, a
    git identity, no DVC analytics), its stdout returned, an error raised on failure."""
    bin_dir = os.path.dirname(sys.executable)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        **env_vars,
    }

    def run(*cmd, cwd=repo):
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        if done.returncode:
            raise AssertionError(f"{' '.join(map(str, cmd))} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    return run
