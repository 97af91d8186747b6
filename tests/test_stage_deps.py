"""dvc.yaml declares the code of every stage, and the packages keep to their layers.

A stage's result is stale when code it ran changed and DVC did not see it. So each stage's deps
must cover every library module its script imports, directly or through other modules (its
import closure, found with `ast`, function-level imports included), and every library folder it
declares must be one that closure uses.
"""

import ast
import re
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, dvc_stages

PACKAGE = "kitti_pipeline"
# The parts each subpackage may import (besides itself): see kitti_pipeline/__init__.py.
LAYERS = {
    "core": set(),
    "data": {"core"},
    "classify": {"core", "data"},
    "detect": {"core", "data"},
    "pretrain": {"core", "data", "classify", "detect"},
    "report": {"core", "data"},
    "experiments": {"core", "classify", "detect"},
}


def imported_modules(path: Path) -> set[str]:
    """Dotted names of what `path` imports: modules, and `from m import x` as `m` and `m.x`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(ROOT).parent.parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def module_files(name: str) -> list[Path]:
    """The library files that importing `name` runs: its parent packages' `__init__.py` and it.

    Empty for a name outside the package, or one that is not a module (`from m import func`).
    """
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return []
    target = ROOT.joinpath(*parts)
    module = target / "__init__.py" if target.is_dir() else target.with_suffix(".py")
    if not module.is_file():
        return []
    parents = [ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
    return [*parents, module]


def import_closure(script: Path) -> set[Path]:
    """Every library file that running `script` imports, directly or not."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_modules(todo.pop()):
            for path in module_files(name):
                if path not in seen:
                    seen.add(path)
                    todo.append(path)
    return seen


def docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return len(body) == 1 and isinstance(body[0], ast.Expr)


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == ROOT / d or (ROOT / d).is_dir() and (ROOT / d) in path.parents for d in deps)


def missing_deps(script: Path, deps: list[str]) -> list[str]:
    """Library files in `script`'s import closure that `deps` does not cover.

    The package's own `__init__.py` is exempt while it holds nothing but its docstring.
    """
    top = ROOT / PACKAGE / "__init__.py"
    return sorted(
        str(path.relative_to(ROOT))
        for path in import_closure(script)
        if not covered(path, deps) and not (path == top and docstring_only(top))
    )


def unused_deps(script: Path, deps: list[str]) -> list[str]:
    """Library folders or files in `deps` that `script`'s import closure never touches."""
    closure = import_closure(script)
    return [
        d for d in deps if d.startswith(f"{PACKAGE}/") and not any(covered(p, [d]) for p in closure)
    ]


def pipeline_stages() -> dict[str, tuple[Path, list[str]]]:
    """Stage name -> (its script, its deps) as dvc.yaml declares them."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)  # a `foreach` stage's definition
        scripts = re.findall(r"stages/\w+\.py", stage["cmd"])
        assert len(scripts) == 1, f"{name}: expected one stage script in {stage['cmd']!r}"
        out[name] = (ROOT / scripts[0], stage["deps"])
    return out


@pytest.mark.parametrize("name", sorted(pipeline_stages()))
def test_every_module_a_stage_imports_is_a_declared_dep(name):
    script, deps = pipeline_stages()[name]
    assert str(script.relative_to(ROOT)) in deps, f"{name}: its script is not a dep"
    missing = missing_deps(script, deps)
    assert not missing, f"{name} imports these, but dvc.yaml does not declare them: {missing}"
    unused = unused_deps(script, deps)
    assert not unused, f"{name} declares library code it never imports: {unused}"


def test_a_removed_dep_is_found():
    script, deps = pipeline_stages()["train_detector"]
    without_data = [d for d in deps if d != "kitti_pipeline/data"]
    missing = missing_deps(script, without_data)
    assert "kitti_pipeline/data/labels.py" in missing  # through detect/data.py
    assert "kitti_pipeline/data/__init__.py" in missing
    assert all(m.startswith("kitti_pipeline/data/") for m in missing)
    # A dep on one file covers that file only.
    files = [*without_data, "kitti_pipeline/data/labels.py"]
    assert "kitti_pipeline/data/labels.py" not in missing_deps(script, files)
    assert "kitti_pipeline/data/boxes.py" in missing_deps(script, files)


def test_the_closure_follows_imports_inside_functions():
    # detect/predict.py imports its figures inside `main` only.
    closure = import_closure(ROOT / PACKAGE / "detect" / "predict.py")
    assert ROOT / PACKAGE / "detect" / "figures.py" in closure
    assert ROOT / PACKAGE / "classify" / "train.py" not in closure


@pytest.mark.parametrize("part", sorted(LAYERS))
def test_each_part_imports_only_the_parts_below_it(part):
    allowed = LAYERS[part] | {part}
    for path in sorted((ROOT / PACKAGE / part).rglob("*.py")):
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] == PACKAGE and len(parts) > 1 and module_files(name):
                assert parts[1] in allowed, f"{path.relative_to(ROOT)} imports {name}"


def test_the_package_has_no_module_outside_its_parts():
    top = sorted(p.name for p in (ROOT / PACKAGE).glob("*.py"))
    assert top == ["__init__.py"]
    assert docstring_only(ROOT / PACKAGE / "__init__.py")
    folders = {p.name for p in (ROOT / PACKAGE).iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(LAYERS)


def test_the_lock_holds_only_the_stages_of_dvc_yaml():
    """A renamed or removed stage leaves its entry in dvc.lock, which `dvc repro` never prunes:
    the committed lock must name exactly the stages dvc.yaml expands to (matrix items
    included)."""
    locked = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    assert locked == dvc_stages()
