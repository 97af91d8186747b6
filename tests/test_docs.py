"""Every command in README.md and docs/ still works as written.

Each `bash` block is split into commands. A project command (`kitti-*`, a stage or bench script,
also under `torchrun`) is parsed by its own argument parser; a `dvc` command by DVC's; a `-S`
key must be a params key, a `make` target a Makefile target, a stage a dvc.yaml stage and a
profile a file in profiles/. The commands that run end to end (`dvc repro`, `dvc exp run`,
`kitti-diff`, `kitti-grid` and the rest) are run by the pipeline tests on the `ci` profile.
"""

import argparse
import importlib
import importlib.util
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from dvc.cli import DvcParserError
from dvc.cli import parse_args as dvc_parse_args

from .conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
# Tools whose own behaviour is not the project's to check.
EXTERNAL = {"git", "cat", "grep", "pip", "printf", "cp", "ls", "mkdir", "export", "cd"}


def commands(page: Path) -> list[tuple[int, list[str]]]:
    """(line, argv) of every command in the page's `bash` blocks: continuations joined,
    comments dropped, `&&`, `;` and `|` chains split."""
    out, block = [], None
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            block = [] if stripped == "```bash" and block is None else None
            continue
        if block is None:
            continue
        block.append(line)
        if line.rstrip().endswith("\\"):
            continue
        text = " ".join(part.rstrip().removesuffix("\\") for part in block)
        block.clear()
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split, lexer.commenters = True, "#"
        argv = []
        for token in [*lexer, ";"]:
            if token in (";", "&&", "|", "||"):
                if argv:
                    out.append((number, argv))
                argv = []
            else:
                argv.append(token)
    return out


CASES = [
    pytest.param(page, line, argv, id=f"{page.name}:{line}:{' '.join(argv)[:50]}")
    for page in PAGES
    for line, argv in commands(page)
]


class _Parsed(Exception):
    pass


def check_parser(entry, argv: list[str], monkeypatch) -> None:
    """Call `entry()` with `argv` parsed by the parser it builds (the real `parse_args`), and
    stop it there: an argument it does not accept fails the test with argparse's message."""
    original = argparse.ArgumentParser.parse_args

    def parse(parser, args=None, namespace=None):
        try:
            original(parser, argv, namespace)
        except SystemExit as stop:
            pytest.fail(f"{parser.prog} {' '.join(argv)}: refused (exit {stop.code})")
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse)
    monkeypatch.setattr(sys, "argv", ["command", *argv])
    with pytest.raises(_Parsed):
        entry()


def script_main(path: Path, monkeypatch):
    """A script's `main`, imported as `python path` would run it (its folder on the path)."""
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(f"_docs_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return lambda: module.main(sys.argv[1:])


def params_key(dotted: str) -> bool:
    value = PARAMS
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True


def check_dvc(argv: list[str]) -> None:
    try:
        args = dvc_parse_args(argv[1:])
    except DvcParserError:
        pytest.fail(f"{' '.join(argv)}: DVC refuses it")
    for setting in getattr(args, "set_param", None) or []:
        key = setting.partition("=")[0]
        assert params_key(key), f"-S {key}: not a key of params.yaml"
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    if argv[1] == "commit":
        for target in args.targets:
            assert target.split("@")[0] in stages, f"dvc commit {target}: no such stage"


@pytest.mark.parametrize(("page", "line", "argv"), CASES)
def test_a_documented_command_is_accepted(page, line, argv, monkeypatch):
    monkeypatch.chdir(ROOT)
    program = argv[0]
    if program in EXTERNAL:
        if program == "cat":
            assert all((ROOT / a).is_file() for a in argv[1:]), f"{page.name}:{line}"
        return
    if program == "source":
        assert argv[1:] == [".venv/bin/activate"], f"{page.name}:{line}: {argv}"
    elif program == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
        assert all(t in targets for t in argv[1:]), f"{page.name}:{line}: {argv}"
    elif program == "dvc":
        check_dvc(argv)
    elif program in SCRIPTS:
        module, function = SCRIPTS[program].split(":")
        check_parser(getattr(importlib.import_module(module), function), argv[1:], monkeypatch)
        if program == "kitti-profile":
            assert (ROOT / "profiles" / f"{argv[1]}.yaml").is_file(), f"no profile {argv[1]}"
    elif program in ("python", "torchrun"):
        script = next(a for a in argv[1:] if a.endswith(".py") or a == "-c")
        if script == "-c":
            compile(argv[argv.index("-c") + 1], f"{page.name}:{line}", "exec")
            return
        check_parser(
            script_main(ROOT / script, monkeypatch), argv[argv.index(script) + 1 :], monkeypatch
        )
    else:
        pytest.fail(f"{page.name}:{line}: {program!r} is no known command")


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_every_page_the_readme_links_exists():
    for page in PAGES:
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / link).exists(), f"{page.name}: {link} does not exist"
