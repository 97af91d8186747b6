"""Each stage's seconds from one `dvc repro` (or one `dvc exp run -S ...`), in one run.

DVC does not time its stages. This runs it, stamps every `Running stage '<name>':` line as DVC
prints it, and gives a stage the seconds from its line to the next one (the last, to DVC's exit):
its Python and torch start and DVC's own bookkeeping around it included, as a user waits for them.
Matrix items are summed by stage too. The CPU's kind is recorded beside the figures, since the
same pipeline takes three times as long on a CPU without native bfloat16, and so is a probe: the
seconds of a fresh Python that imports torch and trains a small float32 convolutional network for
a few steps, which scale with the CPU as the demo's stages do (a torch start, then float32
convolutions).

    rm -rf checkpoints/*/*; python bench/stage_times.py --force   # a cold dvc repro --force
    python bench/stage_times.py --set detector.train.amp=false  # dvc exp run -S ... (float32
                                                                # on a CPU with bfloat16)

writes bench/results/stage_times_<cpu>.json (or --out). Time a cold run, as a fresh clone's: with
`--force` but the training checkpoints left in place, every finished run resumes in seconds.

    python bench/stage_times.py --estimate

runs the probe alone and prints how long the demo's `dvc repro` should take here: the committed
`--reference` run's seconds scaled by the two probes (what `make demo` says at its start).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE_LINE = re.compile(r"^Running stage '([^']+)'")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
REFERENCE = ROOT / "bench/results/stage_times_demo_float32.json"
# A fresh Python: torch's start, then 8 training steps of a small float32 convolutional network
# on a batch of eight 64-px images, as the demo's classifiers see them.
PROBE = """
import torch
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(64, 128, 3, padding=1), torch.nn.ReLU(),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(128, 3),
)
optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
x, y = torch.rand(8, 3, 64, 64), torch.randint(0, 3, (8,))
for _ in range(8):
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    optimizer.step()
"""


def cpu_facts() -> dict:
    """Model name, family, model and whether the CPU has native bfloat16, from /proc/cpuinfo."""
    facts = {"model_name": "unknown", "family": None, "model": None, "native_bf16": False}
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return facts
    for line in cpuinfo.read_text().splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name":
            facts["model_name"] = value
        elif key == "cpu family":
            facts["family"] = int(value)
        elif key == "model":
            facts["model"] = int(value)
        elif key == "flags":
            facts["native_bf16"] = any(flag in value.split() for flag in BF16_FLAGS)
            break  # the first processor's lines are enough
    return facts


def probe_seconds(runs: int = 2) -> float:
    """The fastest of `runs` runs of `PROBE` in a fresh Python, in seconds."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", PROBE], check=True)
        times.append(time.perf_counter() - began)
    return min(times)


def estimate(reference: Path) -> str:
    """What `make demo` prints: the reference run's seconds scaled by this CPU's probe."""
    ref = json.loads(reference.read_text())
    here, cpu = probe_seconds(runs=1), cpu_facts()
    seconds = ref["total_seconds"] * here / ref["probe_seconds"]
    text = (
        f"The demo's dvc repro should take about {seconds / 60:.0f} minutes on this CPU "
        f"({cpu['model_name']}, {os.cpu_count()} cores): it took {ref['total_seconds'] / 60:.1f} "
        f"on the reference CPU, {ref['cpu']['model_name']} (family {ref['cpu']['family']}), "
        f"whose probe took {ref['probe_seconds']:.1f} s against {here:.1f} s here."
    )
    if cpu["native_bf16"] and not ref["cpu"]["native_bf16"]:
        text += " This CPU has native bfloat16, so the detector trains faster than that."
    return text


def dvc_command(dvc: str, sets: list[str], force: bool) -> list[str]:
    """`dvc repro`, or `dvc exp run -S ...` when params are set, with `--force` if asked."""
    if sets:
        command = [dvc, "exp", "run", *(arg for s in sets for arg in ("-S", s))]
    else:
        command = [dvc, "repro"]
    return [*command, "--force"] if force else command


def time_stages(command: list[str], cwd: Path) -> tuple[list[tuple[str, float]], float, int]:
    """Run `command`, echoing its output; (stage, seconds) in the order run, the total seconds
    and the exit code."""
    began = time.perf_counter()
    starts: list[tuple[str, float]] = []
    with subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        for line in process.stdout:
            sys.stdout.write(line)
            match = STAGE_LINE.match(line)
            if match:
                starts.append((match.group(1), time.perf_counter() - began))
    total = time.perf_counter() - began
    ends = [start for _, start in starts[1:]] + [total]
    stages = [(name, end - start) for (name, start), end in zip(starts, ends, strict=True)]
    return stages, total, process.returncode


def summed_by_stage(stages: list[tuple[str, float]]) -> dict[str, float]:
    """Seconds per stage, matrix and foreach items (`name@item`) added together."""
    sums: dict[str, float] = defaultdict(float)
    for name, seconds in stages:
        sums[name.split("@")[0]] += seconds
    return dict(sums)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the DVC project to run")
    parser.add_argument("--set", action="append", default=[], help="key=value, as dvc exp -S")
    parser.add_argument("--force", action="store_true", help="rerun stages that are up to date")
    parser.add_argument("--out", type=Path, default=None, help="results JSON")
    parser.add_argument("--estimate", action="store_true", help="only print the demo's estimate")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="run to scale from")
    args = parser.parse_args(argv)
    if args.estimate:
        print(estimate(args.reference))
        return 0

    dvc = str(Path(sys.executable).parent / "dvc")
    command = dvc_command(dvc, args.set, args.force)
    cpu, probe = cpu_facts(), probe_seconds()
    stages, total, code = time_stages(command, args.repo)
    by_stage = summed_by_stage(stages)

    print(
        f"\n{cpu['model_name']} (family {cpu['family']}, model {cpu['model']}), "
        f"{os.cpu_count()} cores, native bfloat16: {cpu['native_bf16']}"
    )
    print(f"probe {probe:.2f} s; {' '.join(command[1:])}: {total:.0f} s, exit {code}\n")
    width = max((len(name) for name in by_stage), default=5)
    for name, seconds in sorted(by_stage.items(), key=lambda kv: -kv[1]):
        items = sum(1 for stage, _ in stages if stage.split("@")[0] == name)
        print(f"{name:<{width}}  {seconds:7.1f} s  {seconds / total:6.1%}  ({items} run)")

    slug = re.sub(r"[^a-z0-9]+", "_", cpu["model_name"].lower()).strip("_")
    out = args.out or ROOT / f"bench/results/stage_times_{slug}_f{cpu['family']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "command": " ".join(["dvc", *command[1:]]),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "exit_code": code,
        "probe_seconds": round(probe, 2),
        "total_seconds": round(total, 1),
        "by_stage": {name: round(s, 1) for name, s in by_stage.items()},
        "stages": [{"stage": name, "seconds": round(s, 1)} for name, s in stages],
    }
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
