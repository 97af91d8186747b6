"""Stage `detector_report`: Table 6 from both detector runs' test metrics, and transfer against
scratch with the paired intervals of `compare_detectors`."""

import json
from pathlib import Path

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import write_text
from kitti_pipeline.core.params import DETECTOR_RUNS
from kitti_pipeline.report.tables import detector_comparison_table, detector_table


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        runs="folder of per-run metrics JSON",
        comparison="the compare_detectors stage's JSON",
        table="Markdown table to write",
    )
    det = params.detector
    runs = {run: json.loads((Path(args.runs) / f"{run}.json").read_text()) for run in DETECTOR_RUNS}
    frames = next(iter(runs.values()))["test_frames"]
    header = (
        f"Detector study on `{params.data.frames}` ({frames} test frames), `{det.cfg}` at "
        f"{det.img_size}, {det.train.epochs} epochs, {det.train.optimizer} lr {det.train.lr}, "
        f"batch {det.train.batch_size}; transfer weights: {det.init.source}. Precision, recall "
        f"and F1 at confidence {det.evaluate.conf_threshold}, IoU 0.5; best = highest val AP.\n\n"
    )
    comparison = json.loads(Path(args.comparison).read_text())
    tables = detector_table(runs, det.classes[0]) + "\n"
    tables += detector_comparison_table(runs, comparison, det.classes[0])
    write_text(args.table, header + tables)


if __name__ == "__main__":
    run_cli(main)
