"""The report's "Answers to the study's questions", from the last collected grid
(`kitti-grid`, experiments/results/questions.json).

The study closes with two questions it answers only in words: "can you further improve your best
CNN?" and "how can you improve the detection results?". The grid's variants are its candidate
answers, each measured against the baseline with a paired interval (`experiments.diff`).
"""

from __future__ import annotations

from kitti_pipeline.core.params import DETECTOR_RUNS


def change(row: dict) -> str:
    """B - A [low, high], and whether the interval excludes 0."""
    verdict = "resolved" if row["resolved"] else "not resolved"
    return f"{row['difference']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}], {verdict}"


def rows_of(grid: dict, study: str) -> dict[str, list[dict]]:
    return {
        name: [r for r in v.get("rows", []) if r["study"] == study]
        for name, v in grid["variants"].items()
        if any(r["study"] == study for r in v.get("rows", []))
    }


def pick(rows: list[dict], run: str, figure: str) -> dict | None:
    return next((r for r in rows if r["run"] == run and r["figure"] == figure), None)


def classifier_answer(grid: dict) -> list[str]:
    variants = rows_of(grid, "classifier")
    if not variants:
        return ["No classifier variant was collected."]
    first = next(iter(variants.values()))
    best = max((r for r in first if r["figure"] == "mCA"), key=lambda r: r["a"])
    out = [
        f"The baseline's best arm is {best['run']} (test mCA {best['a']:.3f}). "
        "Each variant's change of its mCA and of its Cyclist accuracy:",
        "",
        "| Variant | mCA | B - A [95% interval] | Cyclist accuracy | B - A [95% interval] |",
        "|---|---|---|---|---|",
    ]
    for name, rows in variants.items():
        mca, cyclist = pick(rows, best["run"], "mCA"), pick(rows, best["run"], "acc_Cyclist")
        cells = [name]
        for row in (mca, cyclist):
            cells += [f"{row['a']:.3f} -> {row['b']:.3f}", change(row)] if row else ["", ""]
        out.append("| " + " | ".join(cells) + " |")
    gains = [n for n, rows in variants.items() if gain(pick(rows, best["run"], "mCA"))]
    out += [
        "",
        f"A resolved gain in mCA: {', '.join(gains)}."
        if gains
        else "No variant raised the best arm's mCA beyond the noise of the test frames and seeds.",
    ]
    for name in [n for n in variants if n.startswith("balance")]:
        rows = [r for r in variants[name] if r["figure"] == "acc_Cyclist"]
        rose = [r["run"] for r in rows if r["resolved"] and r["difference"] > 0]
        fell = [r["run"] for r in rows if r["resolved"] and r["difference"] < 0]
        out += [
            "",
            f"{name}, Cyclist accuracy of the {len(rows)} arms: rose beyond the noise in "
            f"{', '.join(rose) or 'none'}; fell beyond it in {', '.join(fell) or 'none'}.",
        ]
    return out


def gain(row: dict | None) -> bool:
    return bool(row and row["resolved"] and row["difference"] > 0)


def detector_answer(grid: dict) -> list[str]:
    variants = rows_of(grid, "detector")
    if not variants:
        return ["No detector variant was collected."]
    runs = [
        run for run in DETECTOR_RUNS if any(pick(rows, run, "AP50") for rows in variants.values())
    ]
    out = [
        "Each variant's change of the test AP@0.5 of each run (best checkpoints):",
        "",
        "| Variant | " + " | ".join(f"{run} AP@0.5 | B - A [95% interval]" for run in runs) + " |",
        "|---|" + "---|---|" * len(runs),
    ]
    for name, rows in variants.items():
        cells = [name]
        for run in runs:
            row = pick(rows, run, "AP50")
            cells += [f"{row['a']:.3f} -> {row['b']:.3f}", change(row)] if row else ["", ""]
        out.append("| " + " | ".join(cells) + " |")
    gains = [
        f"{n} ({run})"
        for n, rows in variants.items()
        for run in runs
        if gain(pick(rows, run, "AP50"))
    ]
    out += [
        "",
        f"A resolved gain in AP@0.5: {', '.join(gains)}."
        if gains
        else "No variant raised AP@0.5 beyond the noise of the test frames and seeds.",
    ]
    return out


ONE_SEED = (
    "One seed per run: the intervals hold the noise of the test frames, not that of training; "
    "a change resolved here may not hold for other seeds (set `{key}: [0, 1, 2]`)."
)


def answers_section(grid: dict | None, profile: str, seeds: tuple[int, int] = (1, 1)) -> list[str]:
    """The section's Markdown lines: the grid's answers when it was collected on `profile`,
    otherwise how to collect them. `seeds`: the classifier's and the detector's seed counts."""
    out = ["## Answers to the study's questions", ""]
    if grid is None or grid.get("profile") != profile:
        where = f" (the last was collected on profile `{grid['profile']}`)" if grid else ""
        return out + [
            f"No grid collected on this profile{where}: run "
            "`kitti-grid run experiments/questions.yaml` and `dvc repro` again.",
            "",
        ]
    out += [
        f"The variants of `{grid['grid']}`, each a DVC experiment on the baseline "
        f"{grid['baseline'][:7]}, against it with paired 95% intervals ({grid['resamples']} "
        "draws of the test frames and seeds; `kitti-grid`). All tables: "
        "experiments/results/.",
        "",
        "### Can you further improve your best CNN?",
        "",
        *classifier_answer(grid),
        "",
        *([ONE_SEED.format(key="classifier.seeds"), ""] if seeds[0] == 1 else []),
        "### How can you improve the detection results?",
        "",
        *detector_answer(grid),
        "",
        *([ONE_SEED.format(key="detector.seeds"), ""] if seeds[1] == 1 else []),
    ]
    missing = [n for n, v in grid["variants"].items() if "missing" in v]
    if missing:
        out += [f"Not collected: {', '.join(missing)}.", ""]
    return out
