"""Every params key reruns exactly the stages that read it.

`dvc repro` and `dvc exp run -S key=value` rerun a stage when a params key it declares in
dvc.yaml changes. So for every leaf key of params.yaml, the stages that declare it must be the
stages whose code reads it: an undeclared read leaves a result stale, a declaration nothing reads
reruns work for nothing. The reads are found from the code itself: every stage of dvc.yaml runs
on the ci profile with params whose every field access is recorded.
"""

import dataclasses
import importlib.util
import re
import shlex
import shutil
import sys

import pytest
import yaml

from kitti_pipeline.core import cli
from kitti_pipeline.core.params import load_params

from .conftest import ARCHS, ROOT, run_stage, shrink

pytestmark = pytest.mark.slow
COPIED = ("dvc.yaml", "stages", "cfg", "profiles", "reports/published.yaml")
WHOLE_FILE = "params.yaml"  # a stage declaring the whole file reads it raw (the report)


def recording(params, reads: set[str], prefix: str = ""):
    """A copy of a params dataclass that adds the dotted name of every leaf read to `reads`."""
    cls = type(params)
    names = {f.name for f in dataclasses.fields(cls)}

    def getattribute(self, name):
        value = object.__getattribute__(self, name)
        if name in names and not dataclasses.is_dataclass(value):
            path = self.__dict__.get("_prefix")
            if path is not None:  # None: a copy made by dataclasses.replace, not recorded
                reads.add(f"{path}.{name}" if path else name)
        return value

    recorder = type(f"Recording{cls.__name__}", (cls,), {"__getattribute__": getattribute})
    values = {}
    for name in names:
        value = getattr(params, name)
        dotted = f"{prefix}.{name}" if prefix else name
        values[name] = recording(value, reads, dotted) if dataclasses.is_dataclass(value) else value
    copy = recorder(**values)
    object.__setattr__(copy, "_prefix", prefix)
    return copy


def leaves(raw: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in raw.items():
        dotted = f"{prefix}.{key}" if prefix else key
        out += leaves(value, dotted) if isinstance(value, dict) else [dotted]
    return out


def covers(declared: str, key: str) -> bool:
    return declared == WHOLE_FILE or key == declared or key.startswith(declared + ".")


def expand(pipeline: dict, raw: dict) -> list[tuple[str, str]]:
    spec = importlib.util.spec_from_file_location(
        "study_timing", ROOT / "bench" / "study_timing.py"
    )
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return [(stage, command) for stage, _, command in module.expand_stages(pipeline, raw)]


@pytest.fixture(scope="module")
def reads_by_stage(tmp_path_factory):
    """Stage -> the params keys its runs read, from running the whole pipeline on ci params."""
    work = tmp_path_factory.mktemp("pipeline")
    for name in COPIED:
        source, target = ROOT / name, work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    raw = shrink(yaml.safe_load((ROOT / "params.yaml").read_text()))
    (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    pipeline = yaml.safe_load((work / "dvc.yaml").read_text())

    reads: dict[str, set[str]] = {name: set() for name in pipeline["stages"]}
    monkey = pytest.MonkeyPatch()
    monkey.chdir(work)
    for stage, command in expand(pipeline, raw):
        current = reads[stage]
        monkey.setattr(cli, "load_params", lambda path, r=current: recording(load_params(path), r))
        script, *args = shlex.split(command)[1:]
        run_stage(script.removeprefix("stages/").removesuffix(".py"), *args)
    monkey.undo()
    return reads, pipeline, raw


def interpolated(spec: dict) -> set[str]:
    """Keys a stage's definition names as `${key}`: a change alters its command or paths, which
    reruns it, and reaches its code as an argument."""
    names = re.findall(r"\$\{([^}]+)\}", yaml.safe_dump(spec))
    return {n for n in names if not n.startswith("item.")}


def test_every_params_key_reruns_exactly_the_stages_that_read_it(reads_by_stage):
    reads, pipeline, raw = reads_by_stage
    stages = pipeline["stages"]
    declared = {
        name: [
            p if isinstance(p, str) else next(iter(p))
            for p in spec.get("do", spec).get("params", [])  # `do`: a foreach stage's definition
        ]
        for name, spec in stages.items()
    }
    wrong = {}
    for key in leaves(raw):
        reading = {
            s
            for s, keys in reads.items()
            if WHOLE_FILE in declared[s]
            or any(covers(r, key) for r in keys | interpolated(stages[s]))
        }
        rerun = {
            s
            for s, keys in declared.items()
            if any(covers(d, key) for d in [*keys, *interpolated(stages[s])])
        }
        if reading != rerun:
            wrong[key] = {"read, undeclared": reading - rerun, "declared, unread": rerun - reading}
    assert not wrong, "dvc.yaml's params do not match what the stages read:\n" + "\n".join(
        f"  {key}: {sides}" for key, sides in wrong.items()
    )


def test_every_declared_key_is_a_key_of_params_yaml(reads_by_stage):
    _, pipeline, raw = reads_by_stage
    keys = leaves(raw)
    for name, spec in pipeline["stages"].items():
        for entry in spec.get("do", spec).get("params", []):
            declared = entry if isinstance(entry, str) else next(iter(entry))
            assert any(covers(declared, k) for k in keys), f"{name} declares {declared}"


def test_the_recorder_sees_reads_through_asdict_and_nested_sections(params_file):
    reads: set[str] = set()
    params = recording(load_params(params_file), reads)
    assert params.crop.image_size == 32 and reads == {"crop.image_size"}
    dataclasses.asdict(params.detector.evaluate)
    assert reads == {"crop.image_size"} | {
        f"detector.evaluate.{k}" for k in ("conf_threshold", "nms_iou", "bootstrap", "pictures")
    }


@pytest.mark.parametrize(
    ("knob", "trainings"),
    [
        (
            "classifier.init.seed",
            {f"train_classifier@{a}-{r}-0" for a in ARCHS for r in ("frozen", "finetune")}
            | {f"train_classifier_control@{a}-0" for a in ARCHS},
        ),
        ("detector.init.seed", {"train_detector@transfer-0"}),
    ],
)
def test_new_starting_weights_never_retrain_a_scratch_run(knob, trainings):
    """What `dvc exp run -S <init knob>` reruns, read from DVC's own graph of dvc.yaml: the
    stages that declare the knob and every stage downstream of them. The transfer arms'
    trainings are among them (and the classifiers' control, whose random weights the seed
    draws); no scratch run, which reads no starting weights."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo
    from networkx import ancestors

    with Repo(str(ROOT)) as repo:
        graph = repo.index.graph
        declaring = {
            stage
            for stage in graph
            for dep in stage.deps
            if isinstance(dep, ParamsDependency) and any(covers(p, knob) for p in dep.params)
        }
        assert declaring, knob
        reached = set(declaring)
        for stage in declaring:
            reached |= ancestors(graph, stage)  # edges run from a stage to what it depends on
        names = {stage.addressing for stage in reached}
    assert trainings <= names, names
    assert not [n for n in names if "scratch" in n], names
