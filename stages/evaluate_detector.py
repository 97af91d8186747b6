"""Stage `evaluate_detector`: Table 6's figures for one run's best and last epoch, on test frames.

Detections are mapped back to frame pixels and scored there: precision, recall and F1 at
`detector.evaluate.conf_threshold`, AP@0.5 (all-point), AP@[.5:.95], KITTI's 40-point AP at IoU
0.7, and, when the frames have native `label_2` files, KITTI's easy / moderate / hard AP. The
best checkpoint's precision-recall curve is written as a DVC plot.
"""

import argparse
from pathlib import Path

from kitti_pipeline.darknet import fuse_batchnorm
from kitti_pipeline.detection_metrics import (
    KITTI_LEVELS,
    detection_summary,
    interpolated_pr,
    kitti_level_ap,
    match,
)
from kitti_pipeline.detector_engine import load_detector, load_split, predict_detections
from kitti_pipeline.files import write_csv, write_json
from kitti_pipeline.labels import KITTI_CLASS_MAP, read_kitti_labels
from kitti_pipeline.params import load_params
from kitti_pipeline.yolo import scales_of

KITTI_TYPES = {study: kitti for kitti, study in KITTI_CLASS_MAP.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--frames", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--model", required=True, help="folder with best.pt and last.pt")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--pr", required=True, help="CSV of the best epoch's PR curve")
    args = parser.parse_args(argv)
    det = load_params(args.params).detector
    test = load_split(args.frames, args.split, "test", det.classes, det.img_size)
    label_2 = Path(args.frames) / "label_2"
    objects = (
        [read_kitti_labels(label_2 / f"{stem}.txt") for stem in test.stems]
        if label_2.is_dir()
        else None
    )

    truths = [
        [test.to_frame(i, t[t[:, 0] == k, 1:]) for i, t in enumerate(test.targets)]
        for k in range(len(det.classes))
    ]
    metrics = {"test_frames": len(test.stems)}
    for name in ("best", "last"):
        model, info = load_detector(Path(args.model) / f"{name}.pt")
        if name == "last" and info["epoch"] == metrics["best"]["epoch"]:
            metrics["last"] = metrics["best"]  # the same checkpoint
            continue
        detections, _ = predict_detections(
            fuse_batchnorm(model), test, scales_of(model), 0.001, det.evaluate.nms_iou
        )
        detections = [test.to_frame(i, d) for i, d in enumerate(detections)]
        result = {"epoch": info["epoch"]}
        for k, class_name in enumerate(det.classes):
            mine = [d[d[:, 5] == k] for d in detections]
            summary = detection_summary(mine, truths[k], det.evaluate.conf_threshold)
            if objects is not None and class_name in KITTI_TYPES:
                iou = 0.7 if class_name == "Car" else 0.5
                summary["kitti_AP40"] = {
                    level: kitti_level_ap(mine, objects, KITTI_TYPES[class_name], level, iou)
                    for level in KITTI_LEVELS
                }
            result[class_name] = summary
            if name == "best" and k == 0:
                _, hits, n = match(mine, truths[k], 0.5)
                write_csv(args.pr, interpolated_pr(hits, n), ["recall", "precision"])
        metrics[name] = result
    write_json(args.metrics, metrics)
    for name in ("best", "last"):
        car = metrics[name][det.classes[0]]
        print(
            f"{name} (epoch {metrics[name]['epoch']}): P {car['precision']:.3f} "
            f"R {car['recall']:.3f} AP50 {car['AP50']:.3f} F1 {car['F1']:.3f}"
        )


if __name__ == "__main__":
    main()
