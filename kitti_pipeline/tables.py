"""The study's result tables, built from per-run metrics.

Tables 4 (ResNet18) and 5 (MobileNetV2) have one row per regime: Combination, mCA, mF1,
mPrecision, mRecall, Acc Car, Acc Person, Acc Cyclist. With several seeds each cell is the mean
and standard deviation over seeds; the per-run table beside it gives each run's bootstrap 95%
interval over test crops, the noise that a single test set carries.
"""

from __future__ import annotations

import numpy as np

COLUMNS = ("mCA", "mF1", "mPrecision", "mRecall")
ARCH_NAMES = {"resnet18": "ResNet18", "mobilenet_v2": "MobileNetV2"}
REGIME_NAMES = {
    "scratch": "from scratch",
    "frozen": "pretrained, frozen",
    "finetune": "pretrained, fine-tuned",
}


def row_values(metrics: dict, classes: tuple[str, ...]) -> dict[str, float]:
    """The table's columns of one run's metrics."""
    values = {c: metrics[c] for c in COLUMNS}
    values.update({f"Acc {k}": metrics["per_class"][k]["accuracy"] for k in classes})
    return values


def summarise_seeds(runs: dict[tuple[str, str, int], dict], classes: tuple[str, ...]) -> dict:
    """Mean and standard deviation over seeds for each (arch, regime).

    Args:
        runs: (arch, regime, seed) -> that run's metrics.
        classes: Class names.

    Returns:
        `{arch: {regime: {column: {"mean", "std", "seeds"}, "trainable_params": n}}}`; std is the
        sample standard deviation (ddof 1), 0 for a single seed.
    """
    summary: dict = {}
    for arch, regime in sorted({(a, r) for a, r, _ in runs}):
        seeds = sorted(s for a, r, s in runs if (a, r) == (arch, regime))
        rows = [row_values(runs[arch, regime, s], classes) for s in seeds]
        cell = {}
        for column in rows[0]:
            values = np.array([r[column] for r in rows])
            cell[column] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "seeds": len(values),
            }
        cell["trainable_params"] = runs[arch, regime, seeds[0]]["params"]["trainable"]
        summary.setdefault(arch, {})[regime] = cell
    return summary


def markdown_tables(summary: dict, runs: dict, classes: tuple[str, ...], regimes) -> str:
    """Tables 4 and 5 in the study's layout, then every run with its bootstrap intervals."""
    columns = [*COLUMNS, *(f"Acc {k}" for k in classes)]
    out = []
    for number, arch in zip((4, 5), ("resnet18", "mobilenet_v2"), strict=True):
        if arch not in summary:
            continue
        out += [
            f"### Table {number}: {ARCH_NAMES[arch]}",
            "",
            "| Combination | " + " | ".join(columns) + " | Trainable params |",
            "|---" * (len(columns) + 2) + "|",
        ]
        for regime in regimes:
            cell = summary[arch].get(regime)
            if cell is None:
                continue
            values = [_format(cell[c]) for c in columns]
            out.append(
                f"| {ARCH_NAMES[arch]} {REGIME_NAMES[regime]} | "
                + " | ".join(values)
                + f" | {cell['trainable_params']:,} |"
            )
        out.append("")
    out += [
        "### Every run, with bootstrap 95% intervals over test crops",
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


def _format(cell: dict) -> str:
    if cell["seeds"] > 1:
        return f"{cell['mean']:.3f} ± {cell['std']:.3f}"
    return f"{cell['mean']:.3f}"


RUN_NAMES = {"transfer": "Yes", "scratch": "No"}


def detector_table(runs: dict[str, dict], class_name: str) -> str:
    """Table 6 (Transfer Learning, Epoch, Precision, Recall, AP, F1) for the best and last
    epoch of each run, then the stricter APs of the same checkpoints.

    Args:
        runs: Run name (`transfer`, `scratch`) -> its `evaluate_detector` metrics.
        class_name: The detected class reported, e.g. `Car`.
    """
    main = [
        "| Transfer Learning | Checkpoint | Epoch | Precision | Recall | AP | F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    strict = [
        "| Transfer Learning | Checkpoint | AP@[.5:.95] | KITTI AP40 IoU 0.7 "
        "| easy | moderate | hard |",
        "|---|---|---|---|---|---|---|",
    ]
    for run, metrics in runs.items():
        for checkpoint in ("best", "last"):
            m = metrics[checkpoint][class_name]
            name = RUN_NAMES.get(run, run)
            main.append(
                f"| {name} | {checkpoint} | {metrics[checkpoint]['epoch']} | "
                f"{m['precision']:.3f} | {m['recall']:.3f} | {m['AP50']:.3f} | {m['F1']:.3f} |"
            )
            levels = m.get("kitti_AP40", {})
            cells = [
                f"{levels[k]:.3f}" if k in levels else "–" for k in ("easy", "moderate", "hard")
            ]
            strict.append(
                f"| {name} | {checkpoint} | {m['AP50_95']:.3f} | {m['kitti_AP40_iou70']:.3f} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(main) + "\n\n" + "\n".join(strict) + "\n"
