"""`kitti-grid`: a file of variants, queued as DVC experiments, run, and collected through
`kitti-diff` against the baseline.

A grid file (`experiments/questions.yaml`) names each variant and the params it sets:

    variants:
      balanced-sampler:
        classifier.train.balance: sampler
      detector-sgd:
        detector.train.optimizer: sgd
        detector.train.lr: 0.001

`kitti-grid run FILE -j N` queues one `dvc exp run --queue -n <variant> -S key=value ...` per
variant on top of HEAD (the baseline: its `dvc.lock` must be current, so that each experiment
reruns only the stages its params reach), starts `dvc queue start -j N`, waits for the queue, and
collects. `kitti-grid collect FILE` collects the finished experiments again. The collection
(`experiments/results/<grid>.json` and `.md`) holds each variant's B - A against the baseline with
its paired interval, for the study its params reach: the classifier's arms (mCA, mF1, Cyclist
accuracy) or the detector's runs (AP@0.5, F1, AP@[.5:.95]).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import yaml

from kitti_pipeline.core.files import write_json, write_text
from kitti_pipeline.core.profiles import describe_profile
from kitti_pipeline.experiments.diff import diff_revisions, revision_reader

RESULTS = Path("experiments/results")
CLASSIFIER_COLUMNS = ("mCA", "mF1", "acc_Cyclist")
DETECTOR_COLUMNS = ("AP50", "F1", "AP50_95")
# `dvc queue status` rows of tasks still to finish.
PENDING = ("Queued", "Running")


def read_grid(path: str | Path) -> dict[str, dict[str, object]]:
    """The variants of a grid file: name -> {dotted param: value}.

    Raises:
        ValueError: naming the file and the variant when the file is not a mapping of
            `variants`, a name is not a valid experiment name, or a variant sets no param.
    """
    path = Path(path)
    raw = yaml.safe_load(path.read_text())
    variants = raw.get("variants") if isinstance(raw, dict) else None
    if not isinstance(variants, dict) or not variants:
        raise ValueError(f"{path}: expected a mapping 'variants' of name -> params")
    for name, params in variants.items():
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"{path}: variant {name!r}: use letters, digits, - and _ only")
        if not isinstance(params, dict) or not params:
            raise ValueError(f"{path}: variant {name!r}: expected a mapping of params it sets")
        for key in params:
            if key.split(".")[0] not in ("classifier", "detector", "crop", "split", "data"):
                raise ValueError(f"{path}: variant {name!r}: {key!r} is not a params key")
    return variants


def set_args(params: dict[str, object]) -> list[str]:
    """`-S key=value` arguments, each value as YAML writes it (lists in flow style)."""
    out = []
    for key, value in params.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip()
        text = text.removesuffix("...").strip()
        out += ["-S", f"{key}={text}"]
    return out


def dvc(root: Path, *args: str) -> str:
    """Run `dvc` in `root`: its output, or a ValueError with its message."""
    done = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True)
    if done.returncode:
        raise ValueError(f"dvc {' '.join(args)} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def git_head(root: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def check_frames_travel(root: Path) -> None:
    """Refuse frames that a queued experiment would not get: its temporary copy holds what git
    and DVC track (a `.dvc` file, or an output in dvc.lock), not other files of the workspace.

    Raises:
        ValueError: naming the folder and the command that tracks it.
    """
    frames = yaml.safe_load((root / "params.yaml").read_text())["data"]["frames"]
    lock = root / "dvc.lock"
    stages = yaml.safe_load(lock.read_text())["stages"] if lock.is_file() else {}
    outputs = {out["path"] for stage in stages.values() for out in stage.get("outs", [])}
    in_git = subprocess.run(
        ["git", "ls-files", "--", frames], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    if frames not in outputs and not (root / f"{frames}.dvc").is_file() and not in_git:
        raise ValueError(
            f"{root / frames}: tracked by neither git nor DVC, so queued experiments would not "
            f"get it: `dvc add {frames}` and commit its .dvc file first"
        )


def queue(root: Path, variants: dict[str, dict]) -> None:
    """Queue every variant on top of HEAD, replacing experiments of the same names there.

    Raises:
        ValueError: when HEAD's pipeline is not up to date (its experiments would rerun the
            baseline's stages and be compared with outputs that do not match its params).
    """
    check_frames_travel(root)
    status = json.loads(dvc(root, "status", "--json"))
    if status:
        raise ValueError(
            f"{root}: the pipeline is not up to date with HEAD ({', '.join(sorted(status))}): "
            "run `dvc repro` and commit dvc.lock first"
        )
    existing = set(dvc(root, "exp", "list", "--name-only").split())
    stale = sorted(existing & set(variants))
    if stale:
        dvc(root, "exp", "remove", *stale)
    for name, params in variants.items():
        dvc(root, "exp", "run", "--queue", "-n", name, *set_args(params))
        print(f"queued {name}: {', '.join(f'{k}={v}' for k, v in params.items())}")


def queue_states(root: Path) -> dict[str, str]:
    """Each queued experiment's state in `dvc queue status`: name -> Queued, Running, Success,
    Failed."""
    states = {}
    for line in dvc(root, "queue", "status").splitlines():
        words = line.split()
        for state in (*PENDING, "Success", "Failed"):
            if state in words and len(words) >= 2:
                states[words[1]] = state
    return states


def run_queue(root: Path, names: list[str], jobs: int, poll: float = 10.0) -> dict[str, str]:
    """Start the queue's workers and wait until every named experiment has finished."""
    # The workers inherit the command's output: captured, `dvc queue start` would not return
    # before the queue is empty.
    started = subprocess.run(
        ["dvc", "queue", "start", "-j", str(jobs)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if started.returncode:
        raise ValueError(f"dvc queue start -j {jobs} failed: run it yourself to see why")
    began = time.monotonic()
    while True:
        states = queue_states(root)
        pending = [n for n in names if states.get(n) in PENDING]
        if not pending:
            return {n: states.get(n, "Success") for n in names}
        minutes = (time.monotonic() - began) / 60
        print(f"{minutes:.0f} min: waiting for {', '.join(pending)}", flush=True)
        time.sleep(poll)


def experiment_baselines(root: Path) -> dict[str, list[str]]:
    """Each experiment name -> the commits it was run on, from DVC's experiment refs
    (`refs/exps/<commit[:2]>/<commit[2:]>/<name>`)."""
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps/"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    out: dict[str, list[str]] = {}
    for ref in refs:
        parts = ref.split("/")
        if len(parts) == 5 and len(parts[2] + parts[3]) == 40:
            out.setdefault(parts[4], []).append(parts[2] + parts[3])
    return out


def collect(
    root: Path, grid: Path, variants: dict[str, dict], resamples: int, baseline: str | None = None
) -> dict:
    """Each variant's difference from the commit its experiment ran on, written to
    experiments/results/<grid>.json and .md.

    An experiment run on `baseline` (default HEAD) is taken first, else the only one of its
    name, wherever it ran; each variant records its commit. A variant with no experiment
    (failed, or not run), or with several on other commits, is listed as missing, not dropped.
    """
    head = git_head(root)
    preferred = baseline or head
    runs = experiment_baselines(root)
    raw = yaml.safe_load(revision_reader(root, preferred)("params.yaml"))
    out = {
        "grid": grid.name,
        "baseline": preferred,
        "profile": describe_profile(raw, root / "profiles"),
        "resamples": resamples,
        "variants": {},
    }
    for name, params in variants.items():
        entry = {"params": params}
        commits = runs.get(name, [])
        if preferred in commits or len(commits) == 1:
            entry["baseline"] = preferred if preferred in commits else commits[0]
            result = diff_revisions(root, entry["baseline"], name, resamples)
            reach = studies_reached(params)
            entry["rows"] = [r for r in result["rows"] if r["study"] in reach]
            entry["paired"] = {s: result.get(f"{s}_paired") for s in ("classifier", "detector")}
        elif commits:
            entry["missing"] = f"run on {len(commits)} other commits: collect with --baseline"
        else:
            entry["missing"] = "no experiment of this name (not run, or failed: `dvc queue logs`)"
        out["variants"][name] = entry
    ran_on = {v["baseline"] for v in out["variants"].values() if "baseline" in v}
    if len(ran_on) == 1:  # every variant ran on one commit: that is the baseline
        out["baseline"] = ran_on.pop()
    folder = root / RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / f"{grid.stem}.json", out)
    write_text(folder / f"{grid.stem}.md", grid_markdown(out))
    return out


def studies_reached(params: dict) -> set[str]:
    """The studies a variant's params change: its own for `classifier.*` and `detector.*`
    keys, both for the data's."""
    sections = {key.split(".")[0] for key in params}
    if sections <= {"classifier", "detector"}:
        return sections
    return {"classifier", "detector"}


def cell(row: dict) -> str:
    """B - A [low, high], bold when resolved."""
    text = f"{row['difference']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"
    return f"**{text}**" if row["resolved"] else text


def grid_markdown(out: dict) -> str:
    """One table per study: each variant's B - A on each run, with its 95% interval (bold:
    resolved), and the baseline's value of each figure."""
    lines = [
        f"Variants of `{out['grid']}` against the baseline {out['baseline'][:7]}: B - A with "
        f"its paired 95% interval ({out['resamples']} draws of the test frames and seeds); "
        "bold where the interval excludes 0.",
        "",
    ]
    for study, columns in (("classifier", CLASSIFIER_COLUMNS), ("detector", DETECTOR_COLUMNS)):
        rows = [
            (name, r)
            for name, v in out["variants"].items()
            for r in v.get("rows", [])
            if r["study"] == study
        ]
        if not rows:
            continue
        table: dict[tuple[str, str], dict] = {}
        for name, r in rows:
            table.setdefault((name, r["run"]), {})[r["figure"]] = r
        header = ["Variant", "Run", *(f"{c} (baseline)" for c in columns), *columns]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for (name, run), figures in table.items():
            base = [f"{figures[c]['a']:.3f}" if c in figures else "" for c in columns]
            change = [cell(figures[c]) if c in figures else "" for c in columns]
            lines.append("| " + " | ".join([name, run, *base, *change]) + " |")
        lines.append("")
    ran_on = {name: v["baseline"][:7] for name, v in out["variants"].items() if "baseline" in v}
    if set(ran_on.values()) - {out["baseline"][:7]}:
        lines += ["Run on: " + ", ".join(f"{n} {c}" for n, c in ran_on.items()) + ".", ""]
    missing = [f"- {name}: {v['missing']}" for name, v in out["variants"].items() if "missing" in v]
    if missing:
        lines += ["Not collected:", *missing, ""]
    return "\n".join(lines)


def run_grid(
    action: str,
    grid: Path,
    jobs: int = 1,
    only: str | None = None,
    resamples: int = 1000,
    repo: Path = Path("."),
    baseline: str | None = None,
) -> None:
    """`kitti-grid`: queue a grid's variants (`queue`), run them (`run`), collect them into
    `experiments/results/<grid>.json` and `.md` (`run`, `collect`)."""
    if baseline and action != "collect":
        raise ValueError("--baseline is for collect: run and queue queue on HEAD")
    variants = read_grid(grid)
    if only:
        chosen = only.split(",")
        unknown = sorted(set(chosen) - set(variants))
        if unknown:
            raise ValueError(f"{grid}: no variant {unknown[0]!r} (--only)")
        variants = {name: variants[name] for name in chosen}
    # run: the experiments' parent, whatever is committed meanwhile; collect: as asked.
    baseline = git_head(repo) if action == "run" else baseline
    if action in ("run", "queue"):
        queue(repo, variants)
    if action == "run":
        states = run_queue(repo, list(variants), jobs)
        failed = [n for n, s in states.items() if s == "Failed"]
        if failed:
            print(f"failed: {', '.join(failed)} (dvc queue logs <name>)")
    if action in ("run", "collect"):
        # The whole grid: variants run earlier (`--only`) stay in the collection.
        out = collect(repo, grid, read_grid(grid), resamples, baseline)
        print(grid_markdown(out))
