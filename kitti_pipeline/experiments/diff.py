"""`kitti-diff`: the headline figures of two revisions, with a paired interval on each change.

`dvc metrics diff` shows A, B and B - A; on a few dozen test frames most changes are noise, and a
reader cannot tell which. This reads what every run scored frame by frame on each side (the
classifiers' test predictions, the detectors' ranked matches: DVC outputs, from the workspace, a
git revision or a `dvc exp` name, through the DVC cache) and bootstraps the difference:

- **Frames.** When both sides scored the same test frames, one set of draws (`core.bootstrap`:
  frames with replacement, each with all its crops or detections) reweights both, so a frame that
  is hard on both sides cancels out of B - A. When the frames differ (another split), each side
  is drawn on its own frames, A from the bootstrap seed and B from the next, and the interval is
  unpaired; the output says so.
- **Seeds.** A run's value in a draw is the mean over its drawn seeds (with replacement). With the
  same seed list on both sides, seed s of A and seed s of B start alike, so they are drawn
  together; otherwise each side draws its own. A generator seeded one past the bootstrap seed
  draws, for each run in the table's order, A's picks (S, R), then B's when they are apart.

A difference is resolved when its 95% interval excludes 0. Nothing is rerun: a run that one side
does not hold is left out of the table.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from kitti_pipeline.classify.compare import table_scores
from kitti_pipeline.classify.metrics import confusion_matrix, resampled_confusions
from kitti_pipeline.core.bootstrap import (
    BOOTSTRAP_SEED,
    difference_cell,
    frame_resamples,
    mean_over_drawn,
)
from kitti_pipeline.core.params import ARMS, DETECTOR_RUNS
from kitti_pipeline.detect.compare import checkpoint_values

WORKSPACE = "workspace"
SPLIT = "data/split.csv"
PREDICTIONS = "plots/classifier/predictions/{arch}-{regime}-s{seed}.csv"
MATCHES = "data/detector_matches/{run}-s{seed}.json"
CLASSIFIER_FIGURES = ("mCA", "mF1")
DETECTOR_FIGURES = ("AP50", "F1", "AP50_95", "kitti_AP40_moderate")


@dataclass
class Side:
    """What one revision's runs scored on its test frames.

    `classifier`: (arch, regime) -> seed -> (true, predicted) class ids of the test crops;
    `detector`: run -> seed -> the best checkpoint's matches (`evaluate_detector`'s `best`).
    """

    name: str
    classes: tuple[str, ...]
    crop_frames: list[str] = field(default_factory=list)
    classifier: dict = field(default_factory=dict)
    detector_frames: list[str] = field(default_factory=list)
    detector: dict = field(default_factory=dict)
    conf_threshold: float = 0.25


def revision_reader(root: str | Path, rev: str | None) -> Callable[[str], str | None]:
    """A function reading a file of `rev` (None: the workspace) as text, None where it is not.

    Revisions are anything `dvc metrics diff` takes: a git revision or a `dvc exp` name; DVC
    outputs come from the cache (or the remote), as `dvc.api` reads them.

    Raises:
        ValueError: when `rev` names no revision.
    """
    root = Path(root)
    if rev is None:
        return lambda path: (root / path).read_text() if (root / path).is_file() else None
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.scm import resolve_rev

    with Repo(str(root)) as repo:
        try:
            sha = resolve_rev(repo.scm, rev)
        except DvcException as err:
            raise ValueError(f"{root}: no revision or experiment {rev!r} ({err})") from None
    fs = DVCFileSystem(repo=str(root), rev=sha)

    def read(path: str) -> str | None:
        if not fs.isfile(path):
            return None
        try:
            return fs.read_text(path)
        except (OSError, DvcException) as err:
            raise ValueError(f"{rev}:{path}: cannot read it ({err}); dvc pull it first") from None

    return read


def load_side(name: str, read: Callable[[str], str | None]) -> Side:
    """Every run's test predictions and matches that a revision holds.

    Raises:
        ValueError: when params.yaml is missing, or a run's predictions are not of the split's
            test crops in its order.
    """
    text = read("params.yaml")
    if text is None:
        raise ValueError(f"{name}: no params.yaml")
    params = yaml.safe_load(text)
    classes = tuple(params["data"]["classes"])
    side = Side(name, classes, conf_threshold=params["detector"]["evaluate"]["conf_threshold"])
    split = read(SPLIT)
    if split is not None:
        tests = [r for r in csv.DictReader(io.StringIO(split)) if r["split"] == "test"]
        side.crop_frames = [r["frame"] for r in tests]
        crops = [r["crop"] for r in tests]
        for arch in params["classifier"]["archs"]:
            for regime in ARMS:
                for seed in params["classifier"]["seeds"]:
                    path = PREDICTIONS.format(arch=arch, regime=regime, seed=seed)
                    text = read(path)
                    if text is None:
                        continue
                    rows = list(csv.DictReader(io.StringIO(text)))
                    if [r["crop"] for r in rows] != crops:
                        raise ValueError(f"{name}:{path}: not the test crops of {SPLIT}")
                    side.classifier.setdefault((arch, regime), {})[seed] = tuple(
                        np.array([classes.index(r[c]) for r in rows])
                        for c in ("actual", "predicted")
                    )
    for run in DETECTOR_RUNS:
        for seed in params["detector"]["seeds"]:
            text = read(MATCHES.format(run=run, seed=seed))
            if text is None:
                continue
            data = json.loads(text)
            side.detector_frames = data["stems"]
            side.detector.setdefault(run, {})[seed] = data["best"]
    return side


def draw_frames(a: list[str], b: list[str], resamples: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """The frame draws of each side over its sorted distinct frames, and whether they are paired
    (both sides scored the same frames, so one set of draws serves both)."""
    names_a, names_b = sorted(set(a)), sorted(set(b))
    if names_a == names_b:
        draws = frame_resamples(len(names_a), resamples)
        return draws, draws, True
    return (
        frame_resamples(len(names_a), resamples),
        frame_resamples(len(names_b), resamples, BOOTSTRAP_SEED + 1),
        False,
    )


def seed_picks(runs: list, seeds_a: list, seeds_b: list, resamples: int) -> dict:
    """run -> (A's picks, B's picks), each (S, R) indices into its side's sorted seeds: drawn
    together when the seed lists are equal, apart otherwise (the module's doc)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED + 1)
    out = {}
    for run in runs:
        a = rng.integers(0, len(seeds_a[run]), (len(seeds_a[run]), resamples))
        b = (
            a
            if seeds_a[run] == seeds_b[run]
            else rng.integers(0, len(seeds_b[run]), (len(seeds_b[run]), resamples))
        )
        out[run] = (a, b)
    return out


def row(study: str, run: str, figure: str, a: tuple, b: tuple, paired: bool) -> dict:
    """One figure of one run: A and B on all test frames and B - A with its interval, from each
    side's (value, per-draw values)."""
    cell = difference_cell(b[0] - a[0], b[1] - a[1])
    return {
        "study": study,
        "run": run,
        "figure": figure,
        "a": a[0],
        "b": b[0],
        **cell,
        "paired": paired,
    }


def mean_over_seeds(per_seed: list[tuple[float, np.ndarray]], picks: np.ndarray):
    """(mean value over all seeds, each draw's mean over its drawn seeds)."""
    drawn = mean_over_drawn(np.stack([draws for _, draws in per_seed]), picks)  # (S, R) -> (R,)
    return float(np.mean([value for value, _ in per_seed])), drawn


def diff_sides(a: Side, b: Side, resamples: int = 1000) -> dict:
    """Every figure of every run both sides hold: A, B, B - A and its 95% interval.

    Returns:
        `{"a", "b", "resamples", "classifier_paired", "detector_paired", "rows"}`, each row as
        `row` gives it; a study whose frames differ between the sides has `<study>_paired` false.

    Raises:
        ValueError: when the sides' classes differ.
    """
    if a.classes != b.classes:
        raise ValueError(f"{a.name} and {b.name} classify other classes: {a.classes}, {b.classes}")
    rows, out = [], {"a": a.name, "b": b.name, "resamples": resamples}
    arms = [arm for arm in sorted(a.classifier) if arm in b.classifier]
    if arms:
        draws_a, draws_b, paired = draw_frames(a.crop_frames, b.crop_frames, resamples)
        out["classifier_paired"] = paired
        seeds = [{arm: sorted(side.classifier[arm]) for arm in arms} for side in (a, b)]
        picks = seed_picks(arms, *seeds, resamples)
        figures = (*CLASSIFIER_FIGURES, *(f"acc_{c}" for c in a.classes))
        for arm in arms:
            scored = []
            for side, draws, pick in ((a, draws_a, picks[arm][0]), (b, draws_b, picks[arm][1])):
                per_seed = [
                    classifier_values(
                        *side.classifier[arm][s], side.crop_frames, draws, side.classes
                    )
                    for s in sorted(side.classifier[arm])
                ]
                scored.append({f: mean_over_seeds([v[f] for v in per_seed], pick) for f in figures})
            for figure in figures:
                rows.append(
                    row(
                        "classifier",
                        " ".join(arm),
                        figure,
                        scored[0][figure],
                        scored[1][figure],
                        paired,
                    )
                )
    runs = [run for run in DETECTOR_RUNS if run in a.detector and run in b.detector]
    if runs:
        draws_a, draws_b, paired = draw_frames(a.detector_frames, b.detector_frames, resamples)
        out["detector_paired"] = paired
        seeds = [{run: sorted(side.detector[run]) for run in runs} for side in (a, b)]
        picks = seed_picks(runs, *seeds, resamples)
        for run in runs:
            scored = []
            for side, draws, pick in ((a, draws_a, picks[run][0]), (b, draws_b, picks[run][1])):
                per_seed = [
                    checkpoint_values(side.detector[run][s], draws, side.conf_threshold)
                    for s in sorted(side.detector[run])
                ]
                scored.append(
                    {
                        f: mean_over_seeds([v[f] for v in per_seed], pick)
                        for f in DETECTOR_FIGURES
                        if all(f in v for v in per_seed)
                    }
                )
            for figure in DETECTOR_FIGURES:
                if figure in scored[0] and figure in scored[1]:
                    rows.append(
                        row("detector", run, figure, scored[0][figure], scored[1][figure], paired)
                    )
    out["rows"] = rows
    return out


def classifier_values(
    y_true: np.ndarray, y_pred: np.ndarray, frames: list[str], draws: np.ndarray, classes: tuple
) -> dict[str, tuple[float, np.ndarray]]:
    """One run's table columns (`classify.compare.table_scores`) on all test crops and in
    each draw: column -> (value, (R,))."""
    cms = resampled_confusions(y_true, y_pred, frames, draws, len(classes))
    drawn = table_scores(cms, classes)
    full = table_scores(confusion_matrix(y_true, y_pred, len(classes))[None], classes)
    return {column: (float(full[column][0]), drawn[column]) for column in drawn}


def diff_revisions(
    root: str | Path, a: str | None = "HEAD", b: str | None = None, resamples: int = 1000
) -> dict:
    """`diff_sides` of two revisions of the repository at `root` (None: the workspace)."""
    sides = [load_side(rev or WORKSPACE, revision_reader(root, rev)) for rev in (a, b)]
    return diff_sides(*sides, resamples)


def format_cell(value: float) -> str:
    return f"{value:.3f}"


def table_rows(result: dict) -> list[list[str]]:
    """The table's cells: run, figure, A, B, B - A, its interval and the verdict."""
    return [
        [
            r["run"] if r["study"] == "classifier" else f"detector {r['run']}",
            r["figure"],
            format_cell(r["a"]),
            format_cell(r["b"]),
            f"{r['difference']:+.3f}",
            f"[{r['low']:+.3f}, {r['high']:+.3f}]",
            "resolved" if r["resolved"] else "-",
        ]
        for r in result["rows"]
    ]


HEADER = ["Run", "Figure", "A", "B", "B - A", "95% interval", "Change"]


def notes(result: dict) -> list[str]:
    """What the reader must know beside the table: unpaired studies, nothing in common."""
    out = []
    for study in ("classifier", "detector"):
        if result.get(f"{study}_paired") is False:
            out.append(
                f"The {study}'s test frames differ between {result['a']} and {result['b']}: "
                "its intervals are unpaired."
            )
    if not result["rows"]:
        out.append(f"{result['a']} and {result['b']} hold no run in common.")
    return out


def markdown(result: dict) -> str:
    """The table for a pull request: A is `result['a']`, B `result['b']`."""
    lines = [
        f"A: `{result['a']}`, B: `{result['b']}`; 95% intervals from {result['resamples']} "
        "bootstrap draws of the test frames and seeds.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(result)]
    lines += ["", *notes(result)] if notes(result) else []
    return "\n".join(lines) + "\n"


def print_table(result: dict) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    cells = table_rows(result)
    table = Table(title=f"A: {result['a']}   B: {result['b']}", box=box.SIMPLE)
    for name in HEADER:
        left = name in ("Run", "Figure", "Change")
        table.add_column(name, justify="left" if left else "right", no_wrap=True)
    for row_cells in cells:
        table.add_row(*row_cells)
    console = Console()
    # As wide as the cells need: a wrapped or cut figure reads badly.
    widths = [max(len(c) for c in column) for column in zip(HEADER, *cells, strict=True)]
    console.width = max(console.width, sum(widths) + 3 * len(widths) + 2)
    console.print(table)
    for line in notes(result):
        console.print(line)


def show_diff(
    repo: str | Path, a: str, b: str | None, resamples: int = 1000, output: str = "table"
) -> None:
    """`kitti-diff`: print the rows of `diff_revisions` as a rich table, Markdown or JSON."""
    if resamples < 1:
        raise ValueError(f"--resamples must be at least 1, got {resamples}")
    result = diff_revisions(repo, a, b, resamples)
    if output == "json":
        print(json.dumps(result, indent=2))
    elif output == "md":
        print(markdown(result), end="")
    else:
        print_table(result)
