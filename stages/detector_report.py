"""Stage `detector_report`: Table 6 from every detector run's test metrics (mean ± std over
seeds, with the intervals of `compare_detectors`), transfer against scratch, and the data of the
all-runs plots: val AP@0.5 against epoch and the test precision-recall curves, one long table
each with a `run` column."""

import json
from pathlib import Path

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import read_csv, write_csv, write_json, write_text
from kitti_pipeline.report.tables import (
    detector_comparison_table,
    detector_table,
    read_detector_runs,
    size_text,
    summarise_detector_seeds,
)


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        runs="folder of per-run metrics JSON",
        comparison="the compare_detectors stage's JSON",
        histories="folder of per-run val history CSVs",
        pr="folder of per-run precision-recall CSVs",
        summary="JSON: Table 6, mean and std over seeds",
        table="Markdown table to write",
        val_ap="CSV: every run's val AP@0.5 against epoch",
        curves="CSV: every run's test precision-recall curve",
    )
    det = params.detector
    runs = read_detector_runs(args.runs, det.runs, det.seeds)
    frames = next(iter(runs.values()))["test_frames"]
    header = (
        f"Detector study on `{params.data.frames}` ({frames} test frames), `{det.cfg}` at "
        f"{size_text(det.img_size)}, {det.train.epochs} epochs, {det.train.optimizer} lr "
        f"{det.train.lr}, batch {det.train.batch_size}, seeds {list(det.seeds)}; transfer weights: "
        f"{det.init.source}{' ' + det.init.weights if det.init.source == 'darknet' else ''}. "
        "Precision, recall and F1 at confidence "
        f"{det.evaluate.conf_threshold}, IoU 0.5; best = highest val AP.\n\n"
    )
    summary = summarise_detector_seeds(runs, det.classes[0])
    comparison = json.loads(Path(args.comparison).read_text())
    tables = detector_table(summary, comparison["arms"]) + "\n"
    tables += detector_comparison_table(comparison)
    names = [f"{run}-s{seed}" for run in det.runs for seed in det.seeds]
    val_ap = [
        {"run": name, "epoch": row["epoch"], "AP50": row["AP50"]}
        for name in names
        for row in read_csv(Path(args.histories) / f"{name}.csv")
    ]
    curves = [
        {"run": name, **row} for name in names for row in read_csv(Path(args.pr) / f"{name}.csv")
    ]
    write_json(args.summary, summary)
    write_text(args.table, header + tables)
    write_csv(args.val_ap, val_ap, ["run", "epoch", "AP50"])
    write_csv(args.curves, curves, ["run", "recall", "precision"])


if __name__ == "__main__":
    run_cli(main)
