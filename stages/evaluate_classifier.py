"""Stage `evaluate_classifier`: every trained classifier on the held-out test crops.

For each run of the study (`classifier.archs` x the arms x `classifier.seeds`), writes the study's
metrics (mCA, macro F1/precision/recall, per-class accuracy, accuracy) with bootstrap 95%
intervals, the per-crop predictions (DVC's confusion plot) and a confusion PNG, each named after
the run. One process scores them all: on a CPU, starting torch costs more than scoring a run.
"""

from pathlib import Path

import matplotlib.pyplot as plt

from kitti_pipeline.classify.evaluate import PREDICTION_FIELDS, evaluate_classifier
from kitti_pipeline.classify.figures import confusion_figure
from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.files import atomic_path, write_csv, write_json


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        crops="crops folder",
        split="split CSV",
        models="folder of the model files from train_classifier",
        metrics="folder of metrics JSONs to write",
        predictions="folder of CSVs to write: crop, actual, predicted",
        figures="folder of confusion matrix PNGs to write",
        runs=(str, "comma-separated runs to score (default: every run of the study)", None),
    )
    cfg, classes = params.classifier, params.data.classes
    device = resolve_device(cfg.train.device)
    study = [f"{a}-{arm}-s{s}" for a in cfg.archs for arm in cfg.arms for s in cfg.seeds]
    for run in args.runs.split(",") if args.runs else study:
        model = Path(args.models) / f"{run}.pt"
        result = evaluate_classifier(model, args.crops, args.split, classes, cfg.bootstrap, device)
        write_json(Path(args.metrics) / f"{run}.json", result.metrics)
        write_csv(Path(args.predictions) / f"{run}.csv", result.predictions, PREDICTION_FIELDS)
        figure = confusion_figure(result.confusion, classes, result.title)
        with atomic_path(Path(args.figures) / f"{run}.png") as tmp:
            figure.savefig(tmp, format="png", dpi=90)
        plt.close(figure)


if __name__ == "__main__":
    run_cli(main)
