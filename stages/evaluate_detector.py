"""Stage `evaluate_detector`: Table 6's figures for one run's best and last epoch, on test frames.

Precision, recall and F1 at `detector.evaluate.conf_threshold`, AP@0.5, AP@[.5:.95], KITTI's
40-point AP and, with native `label_2` files, KITTI's easy / moderate / hard AP; the best
checkpoint's precision-recall curve is written as a DVC plot (`kitti_pipeline.detect.evaluate`).
The best checkpoint's figures get frame-level bootstrap intervals, and its ranked matches go to
`--matches` for the paired comparison of the runs (stage `compare_detectors`).
"""

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.files import write_csv, write_json
from kitti_pipeline.detect.evaluate import evaluate_run


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        frames="frames folder (images/, labels/, label_2/)",
        split="the frame split CSV",
        model="folder with best.pt and last.pt",
        metrics="metrics JSON to write",
        pr="CSV of the best epoch's PR curve",
        matches="JSON: the best epoch's ranked matches, frame by frame",
    )
    det = params.detector
    device = resolve_device(det.train.device)
    metrics, pr, matches = evaluate_run(args.model, args.frames, args.split, det, device)
    write_csv(args.pr, pr, ["recall", "precision"])
    write_json(args.matches, matches)
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run_cli(main)
