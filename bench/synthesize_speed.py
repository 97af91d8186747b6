"""How much the `synthesize` stage gains from drawing frames in one process per CPU core.

Writes the demo's frames (params.yaml's `synthesize`) both ways in one run, three times in
turn: with `write_synthetic_frame` in a loop in this process (the baseline), and with the stage
itself, run as `dvc repro` runs it (a new Python process, its start counted). It checks that
both give the same files, prints seconds and the ratio, and writes
bench/results/synthesize_speed.json.

    python bench/synthesize_speed.py
"""

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from timing import write_results

from kitti_pipeline.core.params import load_params
from kitti_pipeline.data.synthetic import write_synthetic_frame

ROOT = Path(__file__).resolve().parents[1]


def one_process(params_path: Path, out: Path) -> None:
    params = load_params(params_path)
    cfg, classes = params.synthesize, params.data.classes
    for sub in ("images", "labels", *(["label_2"] if cfg.kitti_labels else [])):
        (out / sub).mkdir(parents=True)
    (out / "classes.txt").write_text("\n".join(classes) + "\n")
    for i in range(cfg.frames):
        write_synthetic_frame(out, cfg, classes, i)


def the_stage(params_path: Path, out: Path) -> None:
    stage = [sys.executable, str(ROOT / "stages/synthesize.py")]
    subprocess.run([*stage, "--params", str(params_path), "--out", str(out)], check=True)


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if names != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return False
    return all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench/results/synthesize_speed.json"))
    args = parser.parse_args()
    seconds = {"one_process": [], "stage": []}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for r in range(args.repeats):
            for name, write in (("one_process", one_process), ("stage", the_stage)):
                out = work / f"{name}-{r}"
                began = time.perf_counter()
                write(Path(args.params), out)
                seconds[name].append(time.perf_counter() - began)
                print(f"{name} run {r + 1}: {seconds[name][-1]:.1f} s")
        identical = same_files(work / "one_process-0", work / "stage-0")
        shutil.rmtree(work, ignore_errors=True)
    if not identical:
        raise SystemExit("the stage's files differ from those of one process")
    best = {name: min(values) for name, values in seconds.items()}
    ratio = best["one_process"] / best["stage"]
    frames = load_params(args.params).synthesize.frames
    print(
        f"{frames} frames: one process {best['one_process']:.1f} s, the stage "
        f"{best['stage']:.1f} s ({ratio:.2f}x), files identical"
    )
    write_results(
        args.out,
        torch.device("cpu"),
        frames=frames,
        seconds=seconds,
        best_seconds=best,
        speed_up=ratio,
        identical_files=identical,
    )


if __name__ == "__main__":
    main()
