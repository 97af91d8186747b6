"""Profiles: named sets of params that switch the whole pipeline between scales.

`params.yaml` is the offline demo. A profile (`profiles/<name>.yaml`) holds only the keys that
differ, nested as in params.yaml; `kitti-profile <name>` writes them into params.yaml. The file
is edited round-trip with ruamel.yaml (already a DVC dependency, and what `dvc exp run -S` uses),
so its comments and layout survive, and the result is checked against the typed params before
it replaces params.yaml.
"""

from __future__ import annotations

import argparse
import copy
import io
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from kitti_pipeline.core.cli import run_cli
from kitti_pipeline.core.files import write_text
from kitti_pipeline.core.params import ParamsError, params_from_dict

# Profiles are read from the working tree, beside params.yaml, never from where the package was
# installed: a profile edited in the checkout is the one applied.
PROFILES_DIR = Path("profiles")
# Mappings whose keys are data (file names, architectures), not params: a profile replaces each as
# one value, so that going back to the demo leaves none of another profile's keys behind.
WHOLE_VALUES = ("pretrained.files", "classifier.init.source")


def _merges(target: dict, key: str, value: Any, dotted: str) -> bool:
    """Whether `value` merges into `target[key]` key by key instead of replacing it."""
    return (
        isinstance(value, dict) and isinstance(target.get(key), dict) and dotted not in WHOLE_VALUES
    )


def profile_path(name: str | Path, profiles_dir: str | Path = PROFILES_DIR) -> Path:
    """A profile's file: a path as given, or a name under `profiles_dir`."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    found = Path(profiles_dir) / f"{name}.yaml"
    if not found.exists():
        known = sorted(p.stem for p in Path(profiles_dir).glob("*.yaml"))
        raise FileNotFoundError(
            f"no profile {name!r} in {profiles_dir}/: expected one of {known} or a .yaml path"
        )
    return found


def read_profile(name: str | Path, profiles_dir: str | Path = PROFILES_DIR) -> dict:
    path = profile_path(name, profiles_dir)
    overrides = yaml.safe_load(path.read_text()) or {}
    if not isinstance(overrides, dict):
        raise ParamsError(f"{path}: a profile must be a mapping of params sections")
    return overrides


def _round_trip() -> YAML:
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 100
    # Keep `null` written out, as params.yaml spells it, instead of an empty value.
    rt.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return rt


def profile_values(profile: str | Path, profiles_dir: str | Path = PROFILES_DIR) -> dict:
    """A profile's values on top of the demo's, as round-trip nodes that keep the profile file's
    flow style and end-of-line comments.

    The demo profile lists every key a shipped profile sets, so starting from it resets what
    the previous profile set: a profile gives the same params.yaml whatever came before it.
    """
    read_profile(profile, profiles_dir)  # a profile that is not a mapping is refused here
    rt = _round_trip()
    values = rt.load(Path(profiles_dir, "demo.yaml").read_text())
    _overlay(values, rt.load(profile_path(profile, profiles_dir).read_text()) or {})
    return values


def _overlay(target: dict, overrides: dict, prefix: str = "") -> None:
    for key, value in overrides.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if _merges(target, key, value, dotted):
            _overlay(target[key], value, dotted)
        else:
            target[key] = value


def merge_overrides(target: dict, overrides: dict, prefix: str = "") -> None:
    """Write `overrides` into `target` in place, refusing keys that `target` does not have.

    A nested mapping is merged key by key, except the `WHOLE_VALUES`; any other value (a list
    included) replaces the old one.

    Raises:
        ParamsError: naming the dotted key that is not in `target`.
    """
    for key, value in overrides.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in target:
            raise ParamsError(f"unknown key '{dotted}'")
        if _merges(target, key, value, dotted):
            merge_overrides(target[key], value, dotted)
        elif isinstance(value, list) and isinstance(target[key], list):
            target[key][:] = value  # in place: the list keeps its flow style and comments
        elif isinstance(value, dict) and isinstance(target[key], dict):
            for gone in [k for k in target[key] if k not in value]:
                del target[key][gone]
            target[key].update(value)  # in place: the kept keys keep their comments
        else:
            target[key] = value


def differing_keys(raw: dict, overrides: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose value in `raw` is not the profile's: empty when `raw` is on the profile."""
    keys = []
    for key, value in overrides.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if _merges(raw, key, value, dotted):
            keys += differing_keys(raw[key], value, dotted)
        elif raw.get(key) != value:
            keys.append(dotted)
    return keys


def apply_profile(profile: str | Path, params_path: str | Path = "params.yaml") -> list[str]:
    """Rewrite `params_path` with a profile's values (over the demo's), keeping its comments.

    Returns:
        The dotted keys whose values changed.

    Raises:
        ParamsError: when the profile names a key params.yaml lacks, or the result does not
            type-check; params.yaml is then left untouched.
    """
    params_path = Path(params_path)
    profiles_dir = params_path.parent / PROFILES_DIR
    path = profile_path(profile, profiles_dir)
    overrides = profile_values(path, profiles_dir)
    rt = _round_trip()
    doc = rt.load(params_path.read_text())
    changed = differing_keys(doc, overrides)
    try:
        merge_overrides(doc, overrides)
    except ParamsError as err:
        raise ParamsError(f"{path}: {err} (not in {params_path})") from None
    out = io.StringIO()
    rt.dump(doc, out)
    text = out.getvalue()
    params_from_dict(yaml.safe_load(text), f"{path} applied to {params_path}")
    write_text(params_path, text)
    return changed


def describe_profile(raw: dict[str, Any], profiles_dir: str | Path = PROFILES_DIR) -> str:
    """The profile that plain params `raw` are on, e.g. `study`, or the closest one and the keys
    changed from it, e.g. `demo with classifier.train.lr changed`.

    A profile is compared as the demo's values with its own on top, so a key only the demo
    lists (every key some profile sets) still counts.
    """
    demo = read_profile(Path(profiles_dir) / "demo.yaml")
    candidates = []
    for path in sorted(Path(profiles_dir).glob("*.yaml")):
        values = copy.deepcopy(demo)
        merge_overrides(values, read_profile(path))
        keys = differing_keys(raw, values)
        candidates.append((len(keys), keys, path.stem))
    _, keys, name = min(candidates)
    return name if not keys else f"{name} with {', '.join(keys)} changed"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Write a profile's params into params.yaml (comments kept). Profiles are "
        "read from profiles/ beside params.yaml: demo, study, real, ci.",
    )
    parser.add_argument("profile", help="a name under profiles/ (demo, study, real, ci) or a path")
    parser.add_argument("--params", default="params.yaml", help="the file to rewrite")
    args = parser.parse_args(argv)
    changed = apply_profile(args.profile, args.params)
    used = profile_path(args.profile, Path(args.params).parent / PROFILES_DIR)
    print(f"{args.params}: {len(changed)} value(s) set from {used}")
    for key in changed:
        print(f"  {key}")


def cli() -> None:
    """The console command: `main` with one-line errors (see `core.cli.run_cli`)."""
    run_cli(main)
