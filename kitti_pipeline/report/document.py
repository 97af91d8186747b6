"""The study's report: every table and figure, rebuilt from the metrics and plots alone.

`compose_report` returns the Markdown text and the figures it refers to; the `report` stage
saves them. `html_report` renders that Markdown with markdown-it-py (installed with rich) and
inlines every image as a data URI, so the HTML copy is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt
from matplotlib.figure import Figure

from kitti_pipeline.core.files import read_csv
from kitti_pipeline.core.params import Params
from kitti_pipeline.report.answers import answers_section
from kitti_pipeline.report.figures import loss_curves_figure, metric_by_epoch_figure
from kitti_pipeline.report.summary import (
    findings_summary,
    profile_banner,
    published_confusion,
    published_notes,
)
from kitti_pipeline.report.tables import (
    ARCH_NAMES,
    REGIME_NAMES,
    RUN_NAMES,
    comparison_table,
    detector_comparison_table,
    detector_table,
    markdown_tables,
    read_classifier_runs,
    read_detector_runs,
    size_text,
    starting_weights_text,
    summarise_detector_seeds,
    summarise_seeds,
    with_published,
)

LOSS_FIGURES = {"resnet18": 3, "mobilenet_v2": 5}  # the study's figure numbers


@dataclass(frozen=True)
class ReportInputs:
    """Where the stages left what the report shows (paths as dvc.yaml declares them)."""

    dataset: Path  # metrics/dataset.json
    crop_examples: Path  # plots/crop_examples.png
    classifier_runs: Path  # metrics/classifier/<arch>-<regime>-s<seed>.json
    classifier_comparisons: Path  # metrics/classifier_comparisons.json
    classifier_histories: Path  # plots/classifier/history/<run>.csv
    confusion: Path  # plots/classifier/confusion/<run>.png
    detector_runs: Path  # metrics/detector/<run>.json and init.json
    detector_comparison: Path  # metrics/detector_comparison.json
    detector_histories: Path  # plots/detector/history/<run>.csv
    pictures: Path  # plots/detector/pictures/*.png
    grid: Path  # experiments/results/questions.json, when `kitti-grid` has collected it


def compose_report(
    params: Params,
    inputs: ReportInputs,
    report_dir: Path,
    figures_dir: Path,
    profile: str,
    code_version: str,
    citation: str,
    published: dict | None = None,
) -> tuple[str, dict[str, Figure]]:
    """The report's Markdown and its new figures.

    Args:
        params: The params the results were made with.
        inputs: The stages' outputs.
        report_dir: Where the Markdown will be written; image links are relative to it.
        figures_dir: Where the stage will save the returned figures.
        profile: The profile `params` are on (`demo`, `study`, ...; `custom` for none).
        code_version: The library's version, for the provenance lines.
        citation: The study reproduced (`summary.study_citation`).
        published: The study's figures and notes (`reports/published.yaml`), shown beside ours;
            None when the run is not on the study profile.

    Returns:
        The Markdown, and file name (in `figures_dir`) -> figure.
    """
    published = published or {}
    classes, cfg, det = params.data.classes, params.classifier, params.detector

    def link(path: Path, alt: str) -> str:
        return f"![{alt}]({Path(os.path.relpath(path, report_dir)).as_posix()})"

    dataset = json.loads(inputs.dataset.read_text())
    compared = json.loads(inputs.classifier_comparisons.read_text())
    comparison = json.loads(inputs.detector_comparison.read_text())
    source = (
        f"Data `{params.data.frames}` ({dataset['frames']['read']} frames), "
        f"profile `{profile}`, code `{code_version}`"
    )
    out = [
        "# kitti-transfer: the study's report",
        "",
        f"The study: {citation}. {source}. Made by `dvc repro` from the metrics and plots alone; "
        + (
            "the study's published figures stand under ours, with its notes where they do "
            "not add up."
            if published
            else "the study's published figures appear beside ours on the `study` profile."
        )
        + " `reports/REPORT.html` is this report with every image inlined; it and the detection "
        "pictures are DVC outputs, there after `dvc repro` or `dvc pull`.",
        "",
        *profile_banner(params, profile, dataset["frames"]["read"]),
        "## Summary",
        "",
        *findings_summary(compared, comparison),
        "",
        "## Data",
        "",
        f"### Table 1: crops per split and class (split seed {params.split.seed})",
        "",
        dataset_table(dataset, classes, published.get("table1")),
        f"Skipped boxes: {dataset['skipped']['total']} (see `metrics/dataset.json`). "
        + split_text(dataset),
        "",
        *published_notes((published.get("notes") or {}).get("table1")),
        link(inputs.crop_examples, "Figure 1: crops of each class"),
        "",
        "## Classifiers",
        "",
        f"{source}; seeds {list(cfg.seeds)}; {cfg.train.optimizer} lr {cfg.train.lr}, batch "
        f"{cfg.train.batch_size}, {cfg.train.epochs} epochs, {params.crop.image_size}px crops; "
        f"starting weights: {starting_weights_text(cfg)}. A cell is the figure (with several "
        "seeds, mean ± std) and its 95% interval over bootstrap draws of the test frames (and "
        "seeds); the study's figure, where published, under it.",
        "",
    ]
    runs = read_classifier_runs(inputs.classifier_runs, cfg)
    summary = summarise_seeds(runs, classes)
    out += [
        markdown_tables(
            summary,
            runs,
            classes,
            cfg.arms,
            published.get("classifier"),
            compared["arms"],
            {arch: cfg.init.source_of(arch) for arch in cfg.archs},
        )
    ]
    out += published_notes((published.get("notes") or {}).get("classifier"))
    out += [comparison_table(compared)]

    figures: dict[str, Figure] = {}
    out += [f"### Confusion matrices (test crops, seed {cfg.seeds[0]})", ""]
    for arch in cfg.archs:
        images = [
            link(inputs.confusion / f"{arch}-{regime}-s{cfg.seeds[0]}.png", f"{arch} {regime}")
            for regime in cfg.arms
        ]
        out += [" ".join(images), ""]
    out += published_confusion(published.get("confusion"), classes)
    out += ["### Loss curves", ""]
    for arch in cfg.archs:
        panels = [
            (
                REGIME_NAMES[regime],
                [
                    read_csv(inputs.classifier_histories / f"{arch}-{regime}-s{seed}.csv")
                    for seed in cfg.seeds
                ],
            )
            for regime in cfg.arms
        ]
        name = f"loss_{arch}.png"
        figures[name] = loss_curves_figure(panels, f"{ARCH_NAMES.get(arch, arch)}: loss curves")
        figure = f"Figure {LOSS_FIGURES[arch]}" if arch in LOSS_FIGURES else "Figure"
        out += [link(figures_dir / name, f"{figure}: {arch} loss curves"), ""]

    runs = read_detector_runs(inputs.detector_runs, det.runs, det.seeds)
    init = json.loads((inputs.detector_runs / "init.json").read_text())
    test_frames = next(iter(runs.values()))["test_frames"]
    out += [
        "## Detector",
        "",
        f"{source}; seeds {list(det.seeds)}; `{det.cfg}` at {size_text(det.img_size)}, "
        f"{det.train.epochs} epochs, {det.train.optimizer} lr {det.train.lr}, batch "
        f"{det.train.batch_size}, evaluated every "
        f"{det.train.eval_every} epochs; transfer weights `{det.init.source}`"
        f"{' `' + det.init.weights + '`' if det.init.source == 'darknet' else ''} "
        f"({init.get('loaded_convolutions', '?')} convolutions loaded). Test: {test_frames} "
        f"frames; precision, recall and F1 at confidence {det.evaluate.conf_threshold}, IoU 0.5.",
        "",
        "### Table 6: test results at the best (highest val AP) and last epoch",
        "",
        "The first table follows the study's protocol: YOLO labels, every "
        f"{det.classes[0].lower()} counted, no region ignored; AP is all-point over every "
        "detection above confidence 0.001. The second gives COCO's AP@[.5:.95] (101 recall "
        "points, 100 detections per frame, as pycocotools), the 40-point AP at IoU 0.7 with "
        "every object counted, and, where the frames have `label_2` files, KITTI's AP|R40 by "
        "level as its devkit computes it (vans, DontCare regions and other levels ignored). "
        "A cell is the figure (with several seeds, mean ± std) and its 95% interval over "
        "bootstrap draws of the test frames (and seeds).",
        "",
        detector_table(
            summarise_detector_seeds(runs, det.classes[0]),
            comparison["arms"],
            published.get("detector"),
        ),
        *published_notes((published.get("notes") or {}).get("detector")),
        detector_comparison_table(comparison),
    ]
    histories = {
        f"{RUN_NAMES.get(run, run)} ({run}, seed {seed})": read_csv(
            inputs.detector_histories / f"{run}-s{seed}.csv"
        )
        for run, seed in runs
    }
    figures["detector_val_ap.png"] = metric_by_epoch_figure(histories, "AP50", "val AP@0.5")
    out += [
        "### Validation AP@0.5 against epoch",
        "",
        link(figures_dir / "detector_val_ap.png", "val AP@0.5 against epoch"),
        "",
        "### Detections on test frames",
        "",
        "Red: detections with confidence; green dashes: ground truth. The pictures are DVC "
        "outputs (`plots/detector/pictures/`), not in git: in a fresh clone they appear after "
        "`dvc repro` or `dvc pull`.",
        "",
    ]
    for picture in sorted(inputs.pictures.glob("*.png")):
        out += [link(picture, f"detections on {picture.stem}"), ""]
    grid = json.loads(inputs.grid.read_text()) if inputs.grid.is_file() else None
    out += answers_section(grid, profile, (len(cfg.seeds), len(det.seeds)))
    return "\n".join(out), figures


def dataset_table(dataset: dict, classes: tuple[str, ...], published: dict | None = None) -> str:
    """Table 1: crops per split (rows) and class (columns), with the frames of each split."""
    published = published or {}
    lines = [
        "| Split | Frames | Total | " + " | ".join(classes) + " |",
        "|---" * (len(classes) + 3) + "|",
    ]
    for split in ("train", "val", "test", "all"):
        counts = dataset["crops"][split]
        theirs = published.get(split) or {}
        frames = dataset["frames"]["read"] if split == "all" else dataset["frames"][split]
        cells = [
            with_published(str(counts[k]), theirs.get(k), percent=False, sep=" ")
            for k in ("total", *classes)
        ]
        lines.append(f"| {split} | {frames} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def html_report(markdown: str, report_dir: Path, title: str = "kitti-transfer report") -> str:
    """The Markdown as one HTML page, images inlined as data URIs.

    Raises:
        FileNotFoundError: naming an image the Markdown links to that does not exist.
    """
    body = MarkdownIt("commonmark").enable("table").render(markdown)

    def inline(match: re.Match) -> str:
        path = report_dir / match.group(1)
        if not path.exists():
            raise FileNotFoundError(f"the report links to {path}, which does not exist")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = base64.b64encode(path.read_bytes()).decode()
        return f'src="data:{kind};base64,{data}"'

    body = re.sub(r'src="([^"]+)"', inline, body)
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
        "img{max-width:100%}"
    )
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body>\n{body}</body></html>\n"
    )


def split_text(dataset: dict) -> str:
    """How the frames were split, and how many the detector leaves out for bad input."""
    if dataset["split_by"] == "drive":
        grouped = "Whole drives go to one split (the devkit's mapping, `kitti-subset --mapping`)."
    else:
        grouped = (
            "Frames go to a split whole, but without a drive mapping neighbouring frames of one "
            "drive may sit in train and test, which flatters every test figure."
        )
    left_out = dataset["detector_frames"]["left_out"]
    return grouped + (
        f" {left_out} frames with bad input are left out of the detector's splits "
        "(`data/frame_split.csv`)."
        if left_out
        else ""
    )
