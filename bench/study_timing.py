"""The whole pipeline, stage by stage, without DVC: per-stage and total wall times.

For a machine without dvc (a lent GPU machine): dvc.yaml's stages are expanded here (matrix items
and `${...}` from the params) and run in dvc.yaml's order, each as its own process as `dvc repro`
would run it, in a work folder holding a copy of the pipeline files. The params are params.yaml
with a profile and `--set key=value` overrides applied. `--stand-ins` switches an init source to
`random` where its ImageNet or COCO file is absent, so the study's networks and sizes run
unchanged from random weights (reading the real files would take seconds more).

    python bench/study_timing.py --profile study --set data.frames=data/synthetic --stand-ins

writes bench/results/study_timing_<device>.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from timing import device_name

from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.params import load_params
from kitti_pipeline.core.profiles import apply_profile
from kitti_pipeline.core.version import code_version
from kitti_pipeline.pretrain.real_weights import fetch_pretrained, imagenet_file_name

ROOT = Path(__file__).resolve().parents[1]

COPIED = ("dvc.yaml", "params.yaml", "stages", "cfg", "profiles", "reports/published.yaml")


def lookup(raw: dict, dotted: str):
    value = raw
    for key in dotted.split("."):
        value = value[key]
    return value


def expand_stages(pipeline: dict, raw: dict) -> list[tuple[str, str, str]]:
    """(stage, instance name, command) for every stage and matrix item, in dvc.yaml's order."""

    def substitute(text: str, item: dict) -> str:
        def value(match: re.Match) -> str:
            name = match.group(1)
            return str(item[name[5:]] if name.startswith("item.") else lookup(raw, name))

        return re.sub(r"\$\{([^}]+)\}", value, text)

    commands = []
    for stage, spec in pipeline["stages"].items():
        if "foreach" in spec:  # a mapping: one stage per key, `${key}` and `${item}`
            for key, value in lookup(raw, spec["foreach"][2:-1]).items():
                command = spec["do"]["cmd"].replace("${key}", str(key))
                command = command.replace("${item}", str(value))
                commands.append(
                    (stage, f"{stage}@{key}", " ".join(substitute(command, {}).split()))
                )
            continue
        matrix = {
            key: lookup(raw, values[2:-1]) if isinstance(values, str) else values
            for key, values in spec.get("matrix", {}).items()
        }
        for combo in itertools.product(*matrix.values()) if matrix else [()]:
            item = dict(zip(matrix, combo, strict=True))
            name = stage + ("@" + "-".join(map(str, combo)) if combo else "")
            commands.append((stage, name, " ".join(substitute(spec["cmd"], item).split())))
    return commands


def apply_stand_ins(raw: dict) -> list[str]:
    """Switch init sources whose pretrained files cannot be found to `random`; say which."""

    def found(name: str) -> bool:
        pinned = raw["pretrained"]["files"].get(name)
        try:
            return pinned is not None and bool(
                fetch_pretrained(name, pinned, raw["pretrained"]["dir"])
            )
        except (OSError, ValueError):
            return False

    changed = []
    archs = raw["classifier"]["archs"]
    init = raw["classifier"]["init"]
    sources = init["source"]
    sources = {a: sources for a in archs} if isinstance(sources, str) else dict(sources)
    for arch in archs:
        if sources[arch] == "imagenet" and not found(imagenet_file_name(arch)):
            sources[arch] = "random"
            changed.append(f"classifier.init.source.{arch}=random")
    init["source"] = sources
    detector = raw["detector"]["init"]
    if detector["source"] == "darknet" and not found(detector["weights"] or ""):
        detector["source"] = "random"
        changed.append("detector.init.source=random")
    used = {imagenet_file_name(a) for a in archs if sources[a] == "imagenet"}
    if detector["source"] == "darknet":
        used.add(detector["weights"])
    raw["pretrained"]["files"] = {k: v for k, v in raw["pretrained"]["files"].items() if k in used}
    return changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="study")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--stand-ins", action="store_true")
    parser.add_argument("--workdir", help="default: a new temporary folder")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--out", help="default: bench/results/study_timing_<device>.json")
    args = parser.parse_args(argv)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="study-"))
    for name in COPIED:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, work / name)
    params_path = work / "params.yaml"
    apply_profile(ROOT / "profiles" / f"{args.profile}.yaml", params_path)
    raw = yaml.safe_load(params_path.read_text())
    for setting in args.set:
        key, _, value = setting.partition("=")
        *parents, last = key.split(".")
        (lookup(raw, ".".join(parents)) if parents else raw)[last] = yaml.safe_load(value)
    stand_ins = apply_stand_ins(raw) if args.stand_ins else []
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(params_path)  # fails here, naming the key, on a bad --set

    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    timings, began = [], time.perf_counter()
    for stage, name, command in expand_stages(yaml.safe_load((work / "dvc.yaml").read_text()), raw):
        command = re.sub(r"^python ", f"{sys.executable} ", command)
        if args.dry_run:
            print(f"{name}: {command}")
            continue
        start = time.perf_counter()
        subprocess.run(command, shell=True, cwd=work, env=env, check=True)
        seconds = time.perf_counter() - start
        timings.append({"stage": stage, "name": name, "seconds": round(seconds, 2)})
        print(f"== {name}: {seconds:.1f} s", flush=True)
    total = time.perf_counter() - began
    if args.dry_run:  # before the device is resolved: a dry run needs none
        print(f"params: {params_path} (stand-ins: {stand_ins or 'none'})")
        return
    device = resolve_device(params.classifier.train.device)

    by_stage: dict[str, float] = {}
    for row in timings:
        by_stage[row["stage"]] = round(by_stage.get(row["stage"], 0.0) + row["seconds"], 2)
    summary = json.loads((work / "metrics/classifier_summary.json").read_text())
    detector = json.loads((work / "metrics/detector_summary.json").read_text())
    result = {
        "device": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "code_version": code_version(),
        "profile": args.profile,
        "set": args.set,
        "stand_ins": stand_ins,
        "total_seconds": round(total, 1),
        "by_stage": dict(sorted(by_stage.items(), key=lambda kv: -kv[1])),
        "stages": timings,
        "classifier_mCA": {
            f"{arch}-{regime}": cell["mCA"]
            for arch, cells in summary.items()
            for regime, cell in cells.items()
        },
        "detector_best_AP50": {run: cells["best"]["AP50"] for run, cells in detector.items()},
    }
    out = Path(args.out or ROOT / "bench/results" / f"study_timing_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"total {total:.1f} s on {result['device']}; by stage: {result['by_stage']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
