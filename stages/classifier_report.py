"""Stage `classifier_report`: Tables 4 and 5 from every classifier run's metrics, the paired
comparisons between arms, and every run's losses in one table for the all-runs loss plot."""

import json
from pathlib import Path

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import write_csv, write_json, write_text
from kitti_pipeline.report.tables import (
    LOSS_FIELDS,
    comparison_table,
    loss_rows,
    markdown_tables,
    read_classifier_runs,
    starting_weights_text,
    summarise_seeds,
)


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        runs="folder of per-run metrics JSON",
        comparisons="the compare_classifiers stage's JSON",
        histories="folder of per-run history CSVs",
        summary="JSON: mean and std over seeds",
        tables="Markdown tables",
        losses="CSV of every run's losses (a DVC plot)",
    )
    cfg, classes = params.classifier, params.data.classes

    runs = read_classifier_runs(args.runs, cfg)
    summary = summarise_seeds(runs, classes)
    write_json(args.summary, summary)
    header = (
        f"Classifier study on `{params.data.frames}`, seeds {list(cfg.seeds)}, "
        f"{cfg.train.epochs} epochs, lr {cfg.train.lr}, batch {cfg.train.batch_size}, "
        f"starting weights: {starting_weights_text(cfg)}.\n\n"
    )
    compared = json.loads(Path(args.comparisons).read_text())
    comparisons = comparison_table(compared)
    sources = {arch: cfg.init.source_of(arch) for arch in cfg.archs}
    tables = markdown_tables(
        summary, runs, classes, cfg.arms, arms=compared["arms"], sources=sources
    )
    write_text(args.tables, header + tables + "\n" + comparisons)
    write_csv(args.losses, loss_rows(args.histories, cfg), ["run", *LOSS_FIELDS])


if __name__ == "__main__":
    run_cli(main)
