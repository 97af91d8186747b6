"""Stage `evaluate_classifier`: one trained classifier on the held-out test crops.

Writes the study's metrics (mCA, macro F1/precision/recall, per-class accuracy, accuracy) with
bootstrap 95% intervals, the per-crop predictions (DVC's confusion plot) and a confusion PNG.
"""

import argparse

import torch

from kitti_pipeline.classifiers import build_classifier
from kitti_pipeline.engine import load_crops, predict
from kitti_pipeline.figures import confusion_figure
from kitti_pipeline.files import atomic_path, read_csv, write_csv, write_json
from kitti_pipeline.metrics import bootstrap_intervals, classification_metrics
from kitti_pipeline.params import load_params


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--crops", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--predictions", required=True, help="CSV: crop, actual, predicted")
    parser.add_argument("--figure", required=True, help="confusion matrix PNG")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    classes = params.data.classes

    saved = torch.load(args.model, map_location="cpu", weights_only=True)
    if tuple(saved["classes"]) != classes:
        raise SystemExit(f"{args.model} was trained on {saved['classes']}, not {list(classes)}")
    model = build_classifier(saved["arch"], len(classes))
    model.load_state_dict(saved["state_dict"])
    rows = [r for r in read_csv(args.split) if r["split"] == "test"]
    images, labels = load_crops(args.crops, rows, classes)
    predicted = predict(model, images).argmax(1)

    y_true, y_pred = labels.numpy(), predicted.numpy()
    metrics = classification_metrics(y_true, y_pred, classes)
    intervals = bootstrap_intervals(
        y_true, y_pred, len(classes), params.classifier.bootstrap, seed=saved["seed"]
    )
    confusion = metrics.pop("confusion")
    write_json(
        args.metrics,
        {
            **metrics,
            "ci95": {name: {"low": lo, "high": hi} for name, (lo, hi) in intervals.items()},
            "params": {"trainable": saved["trainable_params"], "total": saved["total_params"]},
            "test_crops": len(rows),
        },
    )
    write_csv(
        args.predictions,
        [
            {"crop": r["crop"], "actual": classes[t], "predicted": classes[p]}
            for r, t, p in zip(rows, y_true, y_pred, strict=True)
        ],
        ["crop", "actual", "predicted"],
    )
    title = f"{saved['arch']} {saved['regime']} (seed {saved['seed']}): mCA {metrics['mCA']:.3f}"
    with atomic_path(args.figure) as tmp:
        confusion_figure(confusion, classes, title).savefig(tmp, format="png", dpi=90)
    print(
        f"{saved['arch']}-{saved['regime']}-s{saved['seed']}: mCA {metrics['mCA']:.3f}, "
        f"accuracy {metrics['accuracy']:.3f}"
    )


if __name__ == "__main__":
    main()
