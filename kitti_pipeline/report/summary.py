"""The report's front matter: the study it reproduces, what this run is, and what it found.

The findings are worked out from the comparisons' intervals, as the tables' are: a difference
whose 95% interval holds 0 is said to be not resolved, whatever its sign.
"""

from __future__ import annotations

from kitti_pipeline.core.params import DETECTOR_PAIRS, Params
from kitti_pipeline.report.tables import (
    ARCH_NAMES,
    REGIME_NAMES,
    SOURCE_NAMES,
    interval_noise,
    size_text,
)

# The questions the summary answers, as (comparison group key, comparison name, sentence).
CLASSIFIER_QUESTIONS = (
    ("finetune-scratch", "Fine-tuned against from scratch"),
    ("frozen-scratch", "Frozen against from scratch"),
    ("frozen-frozen_random", "Frozen pretrained features against frozen random ones (control)"),
)
SHORT_NAMES = {
    "scratch": "from scratch",
    "frozen": "frozen",
    "finetune": "fine-tuned",
    "lpft": "LP-FT",
    "frozen_random": "the control",
}
DETECTOR_QUESTIONS = {"AP50": "AP@0.5", "kitti_AP40_moderate": "KITTI AP40, moderate"}


def study_citation(study: dict) -> str:
    """The study, as the report and README cite it, from `published.yaml`'s `study`."""
    authors = " and ".join(study["authors"])
    return f"\u201c{study['title']}\u201d, {study['course']}, {authors} ({study['date']})"


def profile_banner(params: Params, profile: str, frames_read: int) -> list[str]:
    """A quoted paragraph saying what data and which weights a run that is not the study's
    used; nothing on the study profile, even with a few keys changed (the header names them)."""
    if profile.split()[0] == "study":
        return []
    cfg, det = params.classifier, params.detector
    data = (
        f"generated KITTI-like frames (`{params.data.frames}`, {frames_read}), not KITTI"
        if params.data.frames == "data/synthetic"
        else f"the {frames_read} frames of `{params.data.frames}`, not the study's 500"
    )
    weights = "; ".join(
        f"{ARCH_NAMES.get(arch, arch)} from {SOURCE_NAMES[cfg.init.source_of(arch)]}"
        for arch in cfg.archs
    )
    start = f"`{det.init.weights}`" if det.init.source == "darknet" else det.init.source
    return [
        f"> **Not the study's run.** Profile `{profile}`: {data}; {params.crop.image_size}px "
        f"crops, {cfg.train.epochs} classifier epochs, seeds {list(cfg.seeds)}. Pretrained "
        f"classifier arms: {weights}. Detector: `{det.cfg}` at {size_text(det.img_size)}, "
        f"{det.train.epochs} epochs, transfer from {start}. Its figures show the pipeline at "
        "work, not the size of the study's effects; the study's setting is the `study` profile.",
        "",
    ]


def _difference(cell: dict) -> str:
    return f"{cell['difference']:+.3f} [{cell['low']:+.3f}, {cell['high']:+.3f}]"


def _verdict(cell: dict, a: str, b: str) -> str:
    if cell["low"] > 0:
        return f"{a} ahead"
    if cell["high"] < 0:
        return f"{b} ahead"
    return "not resolved"


def findings_summary(classifier: dict, detector: dict) -> list[str]:
    """The summary's bullets: each of the study's questions with its difference, 95% interval
    and verdict, from `compare_classifiers`' and `compare_detectors`' JSON."""
    out = []
    for name, question in CLASSIFIER_QUESTIONS:
        a, b = (SHORT_NAMES[r] for r in name.split("-"))
        parts = [
            f"{ARCH_NAMES.get(arch, arch)} {_difference(cells[name]['mCA'])}, "
            f"{_verdict(cells[name]['mCA'], a, b)}"
            for arch, cells in classifier["comparisons"].items()
            if name in cells
        ]
        out.append(f"- **{question}** (mCA): {'; '.join(parts)}.")
    pairs = classifier["comparisons"].get("resnet18-mobilenet_v2", {})
    if "finetune" in pairs:
        cell = pairs["finetune"]["mCA"]
        out.append(
            f"- **ResNet18 against MobileNetV2, both fine-tuned** (mCA): {_difference(cell)}, "
            f"{_verdict(cell, 'ResNet18', 'MobileNetV2')}."
        )
    for a, b in DETECTOR_PAIRS:
        cells = detector.get(f"{a}-{b}")
        if cells is None:
            continue
        parts = [
            f"{label} {_difference(cells[key])}, {_verdict(cells[key], a, b)}"
            for key, label in DETECTOR_QUESTIONS.items()
            if key in cells
        ]
        out.append(f"- **Detector, {a} against {b}** (best checkpoints): {'; '.join(parts)}.")
    out += [
        "",
        f"Each difference is a - b with its paired 95% interval over bootstrap draws of the "
        f"classifiers' {classifier['test_frames']} {interval_noise(classifier['seeds'])}; "
        "\u201cnot resolved\u201d: the interval holds 0.",
    ]
    return out


def published_notes(notes: list[str] | None) -> list[str]:
    """The study's notes on what does not add up in a table it printed, as a quoted list."""
    if not notes:
        return []
    return ["> On the study's printed figures:", ">", *(f"> - {n}" for n in notes), ""]


def published_confusion(matrices: dict | None, classes: tuple[str, ...]) -> list[str]:
    """The confusion matrices the study printed, `{arch-regime: rows}`, as Markdown tables."""
    out = []
    for run, rows in (matrices or {}).items():
        arch, regime = run.split("-")
        out += [
            f"The study's {ARCH_NAMES.get(arch, arch)} {REGIME_NAMES[regime]} (rows: true class; "
            "columns: predicted):",
            "",
            "| | " + " | ".join(classes) + " |",
            "|---" * (len(classes) + 1) + "|",
            *(
                f"| {c} | " + " | ".join(map(str, r)) + " |"
                for c, r in zip(classes, rows, strict=True)
            ),
            "",
        ]
    return out
