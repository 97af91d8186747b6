"""Stage `evaluate_classifier`: one trained classifier on the held-out test crops.

Writes the study's metrics (mCA, macro F1/precision/recall, per-class accuracy, accuracy) with
bootstrap 95% intervals, the per-crop predictions (DVC's confusion plot) and a confusion PNG.
"""

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
        model="model file from train_classifier",
        metrics="metrics JSON to write",
        predictions="CSV: crop, actual, predicted",
        figure="confusion matrix PNG",
    )
    classes = params.data.classes
    device = resolve_device(params.classifier.train.device)
    result = evaluate_classifier(
        args.model, args.crops, args.split, classes, params.classifier.bootstrap, device
    )
    write_json(args.metrics, result.metrics)
    write_csv(args.predictions, result.predictions, PREDICTION_FIELDS)
    figure = confusion_figure(result.confusion, classes, result.title)
    with atomic_path(args.figure) as tmp:
        figure.savefig(tmp, format="png", dpi=90)
    plt.close(figure)


if __name__ == "__main__":
    run_cli(main)
