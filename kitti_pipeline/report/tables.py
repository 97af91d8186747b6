"""The study's result tables, built from per-run metrics.

Tables 4 (ResNet18) and 5 (MobileNetV2) have one row per regime: Combination, mCA, mF1,
mPrecision, mRecall, Acc Car, Acc Person, Acc Cyclist. With several seeds each cell is the mean
and standard deviation over seeds; the per-run table beside it gives each run's bootstrap 95%
interval over test crops, the noise that a single test set carries.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kitti_pipeline.core.files import read_csv
from kitti_pipeline.core.params import DETECTOR_PAIRS, DETECTOR_RUNS, ClassifierParams

LOSS_FIELDS = ("epoch", "train_loss", "val_loss")

COLUMNS = ("mCA", "mF1", "mPrecision", "mRecall")
ARCH_NAMES = {"resnet18": "ResNet18", "mobilenet_v2": "MobileNetV2"}
# Where the pretrained arms' weights come from, per `classifier.init.source`.
SOURCE_NAMES = {
    "imagenet": "torchvision's ImageNet file (IMAGENET1K_V1)",
    "synthetic": "the offline stand-in, pretrained on generated objects",
    "random": "random weights",
}
REGIME_NAMES = {
    "scratch": "from scratch",
    "frozen": "pretrained, frozen",
    "finetune": "pretrained, fine-tuned",
    "lpft": "pretrained, LP-FT (probe, then fine-tuned)",
    "frozen_random": "random weights, frozen (control)",
}


def read_classifier_runs(folder: str | Path, cfg: ClassifierParams) -> dict:
    """Every classifier run's metrics: (arch, regime, seed) -> `<arch>-<regime>-s<seed>.json`."""
    return {
        (arch, regime, seed): json.loads(
            (Path(folder) / f"{arch}-{regime}-s{seed}.json").read_text()
        )
        for arch in cfg.archs
        for regime in cfg.arms
        for seed in cfg.seeds
    }


def loss_rows(folder: str | Path, cfg: ClassifierParams) -> list[dict]:
    """Every classifier run's per-epoch losses in one long table (`run`, `epoch`, losses): the
    data of the all-runs loss plot, whatever the archs and seeds."""
    return [
        {"run": f"{arch}-{regime}-s{seed}", **{k: row[k] for k in LOSS_FIELDS}}
        for arch in cfg.archs
        for regime in cfg.arms
        for seed in cfg.seeds
        for row in read_csv(Path(folder) / f"{arch}-{regime}-s{seed}.csv")
    ]


def row_values(metrics: dict, classes: tuple[str, ...]) -> dict[str, float]:
    """The table's columns of one run's metrics, keyed as in the summary JSON (`acc_Car`)."""
    values = {c: metrics[c] for c in COLUMNS}
    values.update({f"acc_{k}": metrics["per_class"][k]["accuracy"] for k in classes})
    return values


def mean_and_std(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each key's mean over `rows` (one per seed) and, with several, its sample standard
    deviation (ddof 1) as `<key>_std`."""
    cell = {}
    for key in rows[0]:
        values = np.array([r[key] for r in rows])
        cell[key] = float(values.mean())
        if len(values) > 1:
            cell[f"{key}_std"] = float(values.std(ddof=1))
    return cell


def summarise_seeds(runs: dict[tuple[str, str, int], dict], classes: tuple[str, ...]) -> dict:
    """Mean and standard deviation over seeds for each (arch, regime): Tables 4 and 5 as JSON.

    The keys are flat so that `dvc metrics diff` and `dvc exp show` name each cell of the
    tables directly, e.g. `resnet18.finetune.mCA`.

    Args:
        runs: (arch, regime, seed) -> that run's metrics.
        classes: Class names.

    Returns:
        `{arch: {regime: {column: mean, ..., "seeds": n, "trainable_params": p}}}`, plus
        `<column>_std` (sample standard deviation, ddof 1) for each column when n > 1.
    """
    summary: dict = {}
    for arch, regime in sorted({(a, r) for a, r, _ in runs}):
        seeds = sorted(s for a, r, s in runs if (a, r) == (arch, regime))
        cell = mean_and_std([row_values(runs[arch, regime, s], classes) for s in seeds])
        cell["seeds"] = len(seeds)
        cell["trainable_params"] = runs[arch, regime, seeds[0]]["params"]["trainable"]
        summary.setdefault(arch, {})[regime] = cell
    return summary


def starting_weights_text(cfg) -> str:
    """Where each architecture's pretrained arms start from, e.g. `resnet18 synthetic,
    mobilenet_v2 imagenet`, from the classifier params."""
    return ", ".join(f"{arch} {cfg.init.source_of(arch)}" for arch in cfg.archs)


def markdown_tables(
    summary: dict,
    runs: dict,
    classes: tuple[str, ...],
    regimes,
    published: dict | None = None,
    arms: dict | None = None,
    sources: dict[str, str] | None = None,
) -> str:
    """Tables 4 and 5 in the study's layout, then every run with its bootstrap intervals.

    Args:
        sources: `{arch: classifier.init.source}`, said under each table's title.
        published: `{arch: {regime: {column: percent}}}`, the study's figures as printed, shown
            under ours where given.
        arms: `compare_classifiers`' `arms`: each cell's 95% interval (test frames and seeds),
            shown under the figure, so that the tables stay narrow enough not to wrap.
    """
    keys = [*COLUMNS, *(f"acc_{k}" for k in classes)]
    headers = [*COLUMNS, *(f"Acc {k}" for k in classes)]
    published = published or {}
    out = []
    for number, arch in zip((4, 5), ("resnet18", "mobilenet_v2"), strict=True):
        if arch not in summary:
            continue
        out += [
            f"### Table {number}: {ARCH_NAMES[arch]}",
            "",
            *(
                [f"Pretrained arms start from {SOURCE_NAMES[sources[arch]]}.", ""]
                if sources and arch in sources
                else []
            ),
            "| Combination | " + " | ".join(headers) + " | Trainable params |",
            "|---" * (len(headers) + 2) + "|",
        ]
        for regime in regimes:
            cell = summary[arch].get(regime)
            if cell is None:
                continue
            theirs = (published.get(arch) or {}).get(regime) or {}
            ci = ((arms or {}).get(arch) or {}).get(regime) or {}
            values = [
                with_published(_format(cell, k) + _interval(ci.get(k), CELL_BREAK), theirs.get(k))
                for k in keys
            ]
            out.append(
                f"| {ARCH_NAMES[arch]} {REGIME_NAMES[regime]} | "
                + " | ".join(values)
                + f" | {cell['trainable_params']:,} |"
            )
        out.append("")
    out += [
        "### Every run, with bootstrap 95% intervals over test frames",
        "",
        "| Run | mCA | mCA 95% CI | mF1 | mF1 95% CI | Accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for (arch, regime, seed), m in sorted(runs.items()):
        ci = m["ci95"]
        out.append(
            f"| {arch} {regime} seed {seed} | {m['mCA']:.3f} | "
            f"[{ci['mCA']['low']:.3f}, {ci['mCA']['high']:.3f}] | {m['mF1']:.3f} | "
            f"[{ci['mF1']['low']:.3f}, {ci['mF1']['high']:.3f}] | {m['accuracy']:.3f} |"
        )
    return "\n".join(out) + "\n"


def with_interval(value: float, ci: dict | None) -> str:
    """A figure and, where there is one, its 95% interval: `0.497 [0.431, 0.569]`."""
    return f"{value:.3f}" + _interval(ci)


def _interval(ci: dict | None, sep: str = " ") -> str:
    return "" if ci is None else f"{sep}[{ci['low']:.3f}, {ci['high']:.3f}]"


# Inside a table cell, the figure, its interval and the study's figure go on lines of their own:
# side by side, Tables 4 to 6 are too wide for a page.
CELL_BREAK = "<br>"


def with_published(
    ours: str, published: float | None, percent: bool = True, sep: str = CELL_BREAK
) -> str:
    """A table cell: our figure, then the study's as printed, `(study 70.43%)`, if there is one.

    Args:
        percent: The study printed the figure as a percentage (a count or an epoch: False).
    """
    if published is None:
        return ours
    shown = f"{published:.2f}%" if percent else f"{published:g}"
    return f"{ours}{sep}(study {shown})"


def _format(cell: dict, key: str) -> str:
    if cell["seeds"] > 1:
        return f"{cell[key]:.3f} ± {cell[key + '_std']:.3f}"
    return f"{cell[key]:.3f}"


# Table 6's "Transfer Learning" column: the study's two runs, then the regimes added to them.
RUN_NAMES = {
    "transfer": "Yes",
    "scratch": "No",
    "zeroshot": "Zero-shot (untrained)",
    "frozen": "Frozen backbone",
    "lpft": "LP-FT",
}
# A checkpoint's figures in Table 6 and in the detector summary, keyed as in the metrics.
DETECTOR_COLUMNS = ("precision", "recall", "AP50", "F1", "AP50_95", "AP40_iou70_all_truths")


def size_text(size: int | tuple[int, int]) -> str:
    """The detector's input size as the reports write it: `416`, or `736x224` (width x height)."""
    return str(size) if isinstance(size, int) else "x".join(str(s) for s in size)


def read_detector_runs(folder: str | Path, runs: tuple[str, ...], seeds: tuple[int, ...]) -> dict:
    """Every detector run's metrics: (run, seed) -> `<run>-s<seed>.json`."""
    return {
        (run, seed): json.loads((Path(folder) / f"{run}-s{seed}.json").read_text())
        for run in runs
        for seed in seeds
    }


def checkpoint_row(metrics: dict, class_name: str) -> dict[str, float]:
    """Table 6's figures of one checkpoint, KITTI's levels flattened (`kitti_AP40_moderate`)."""
    m = metrics[class_name]
    row = {k: m[k] for k in DETECTOR_COLUMNS}
    row.update({f"kitti_AP40_{level}": v for level, v in m.get("kitti_AP40", {}).items()})
    return row


def summarise_detector_seeds(runs: dict[tuple[str, int], dict], class_name: str) -> dict:
    """Mean and sample standard deviation over seeds of each run's checkpoints: Table 6 as JSON.

    Returns:
        `{run: {checkpoint: {metric: mean, ..., "seeds": n, "epochs": [...]}}}`, plus
        `<metric>_std` (ddof 1) when n > 1; flat keys, for `dvc metrics diff`.
    """
    summary: dict = {}
    for run in sorted({r for r, _ in runs}, key=DETECTOR_RUNS.index):
        seeds = sorted(s for r, s in runs if r == run)
        for checkpoint in ("best", "last"):
            cell = mean_and_std(
                [checkpoint_row(runs[run, s][checkpoint], class_name) for s in seeds]
            )
            cell["seeds"] = len(seeds)
            cell["epochs"] = [runs[run, s][checkpoint]["epoch"] for s in seeds]
            summary.setdefault(run, {})[checkpoint] = cell
    return summary


def detector_table(summary: dict, arms: dict | None = None, published: dict | None = None) -> str:
    """Table 6 (Transfer Learning, Epoch, Precision, Recall, AP, F1) for the best and last
    epoch of each run, then the stricter APs of the same checkpoints; with several seeds each
    figure is the mean ± std over seeds, and each has its 95% interval over the test frames (and
    seeds) where `arms` gives one.

    Args:
        summary: `summarise_detector_seeds`' JSON.
        arms: `compare_detectors`' `arms`.
        published: `{run: {checkpoint: {column: value}}}` with columns epoch, precision,
            recall, AP50, F1: the study's figures (percentages as printed), shown under ours
            where given.
    """
    published, arms = published or {}, arms or {}
    main = [
        "| Transfer Learning | Checkpoint | Epoch | Precision | Recall | AP | F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    strict = [
        "| Transfer Learning | Checkpoint | AP@[.5:.95] (COCO) | AP40 IoU 0.7, all cars "
        "| KITTI easy | KITTI moderate | KITTI hard |",
        "|---|---|---|---|---|---|---|",
    ]
    for run, checkpoints in summary.items():
        for checkpoint, cell in checkpoints.items():
            name = RUN_NAMES.get(run, run)
            theirs = (published.get(run) or {}).get(checkpoint) or {}
            ci = (arms.get(run) or {}).get(checkpoint) or {}

            def figure(key: str, cell=cell, ci=ci) -> str:
                if key not in cell:
                    return "–"
                return _format(cell, key) + _interval(ci.get(key), CELL_BREAK)

            epochs = ", ".join(str(e) for e in cell["epochs"])
            cells = [with_published(epochs, theirs.get("epoch"), percent=False)]
            cells += [
                with_published(figure(k), theirs.get(k))
                for k in ("precision", "recall", "AP50", "F1")
            ]
            main.append(f"| {name} | {checkpoint} | " + " | ".join(cells) + " |")
            keys = ["AP50_95", "AP40_iou70_all_truths"]
            keys += [f"kitti_AP40_{level}" for level in ("easy", "moderate", "hard")]
            strict.append(
                f"| {name} | {checkpoint} | " + " | ".join(figure(k) for k in keys) + " |"
            )
    return "\n".join(main) + "\n\n" + "\n".join(strict) + "\n"


def arm_name(group: str, name: str, side: int) -> str:
    """A compared arm in words: side 0 or 1 of comparison `name` in `group`."""
    if group in ARCH_NAMES:  # regimes within one architecture
        return f"{ARCH_NAMES[group]} {REGIME_NAMES[name.split('-')[side]]}"
    return f"{ARCH_NAMES[group.split('-')[side]]} {REGIME_NAMES[name]}"


def finding(cell: dict, a: str, b: str, seeds: list[int]) -> str:
    """What a difference's interval says, in words: which arm is ahead, or that it is unresolved.

    With one seed the interval covers the test frames only, and a single run can flip: the
    finding says so.
    """
    scope = "" if len(seeds) > 1 else f" on these test frames, seed {seeds[0]} only"
    if cell["low"] > 0:
        return f"{a} ahead{scope}"
    if cell["high"] < 0:
        return f"{b} ahead{scope}"
    return "not resolved (the interval holds 0)"


def interval_noise(seeds: list[int]) -> str:
    """What the bootstrap draws resample: test frames and seeds, or the test frames only."""
    if len(seeds) > 1:
        return "test frames and seeds"
    return f"test frames only (one seed, {seeds[0]}: the spread between seeds is not in it)"


def comparison_table(comparisons: dict) -> str:
    """The paired comparisons (`classify.compare`) as a Markdown table, findings from the intervals.

    Args:
        comparisons: The `compare_classifiers` stage's JSON.
    """
    seeds = comparisons["seeds"]
    noise = interval_noise(seeds)
    out = [
        f"### Comparisons: paired differences, 95% intervals over {comparisons['resamples']} "
        f"bootstrap draws of the {comparisons['test_frames']} {noise}",
        "",
        "| Comparison (a - b) | mCA difference | mCA 95% CI | mF1 difference | mF1 95% CI "
        "| Finding (mCA) |",
        "|---|---|---|---|---|---|",
    ]
    for group, cells in comparisons["comparisons"].items():
        for name, metrics in cells.items():
            a, b = arm_name(group, name, 0), arm_name(group, name, 1)
            mca, mf1 = metrics["mCA"], metrics["mF1"]
            out.append(
                f"| {a} - {b} | {mca['difference']:+.3f} | [{mca['low']:+.3f}, {mca['high']:+.3f}] "
                f"| {mf1['difference']:+.3f} | [{mf1['low']:+.3f}, {mf1['high']:+.3f}] "
                f"| {finding(mca, a, b, seeds)} |"
            )
    return "\n".join(out) + "\n"


DETECTOR_METRICS = {
    "AP50": "AP@0.5",
    "F1": "F1",
    "AP50_95": "AP@[.5:.95]",
    "kitti_AP40_moderate": "KITTI AP40, moderate",
}


def detector_comparison_table(comparison: dict) -> str:
    """Each compared pair of runs (`DETECTOR_PAIRS`) at their best checkpoints, with each
    run's 95% interval, the paired interval of the difference and the finding it supports, as a
    Markdown table.

    Args:
        comparison: The `compare_detectors` stage's JSON.
    """
    arms, seeds = comparison["arms"], comparison["seeds"]
    noise = interval_noise(seeds)
    out = [
        f"### Paired differences: best checkpoints, 95% intervals over "
        f"{comparison['resamples']} bootstrap draws of the {comparison['test_frames']} {noise}",
        "",
        "| Comparison (a - b) | Metric | a | b | a - b | Finding |",
        "|---|---|---|---|---|---|",
    ]
    for a, b in DETECTOR_PAIRS:
        cells = comparison.get(f"{a}-{b}")
        if cells is None:
            continue
        for key, label in DETECTOR_METRICS.items():
            if key not in cells:
                continue
            values = [
                with_interval(arms[run]["best"][key]["value"], arms[run]["best"][key])
                for run in (a, b)
            ]
            cell = cells[key]
            out.append(
                f"| {a} - {b} | {label} | {values[0]} | {values[1]} | {cell['difference']:+.3f} "
                f"[{cell['low']:+.3f}, {cell['high']:+.3f}] | {finding(cell, a, b, seeds)} |"
            )
    return "\n".join(out) + "\n"
