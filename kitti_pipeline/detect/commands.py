"""The detector's command lines, `kitti-detect` and `kitti-anchors`.

The arguments are parsed before torch is imported, so that `--help` and a mistyped option
answer at once; the work is imported only once the arguments are good.
"""

from __future__ import annotations

import argparse

from kitti_pipeline.core.cli import add_device_option, run_cli

DETECT_EXAMPLE = """example:
  kitti-detect --model models/detector/transfer-s0/best.pt --out detections/ my_frames/

Each image is letterboxed to the model's input size, detected with BatchNorm folded into the
convolutions, and written as a PNG with the boxes and confidences drawn; detections.csv lists
image, class, score, x1, y1, x2, y2 in the image's pixels."""

ANCHORS_EXAMPLE = """example:
  kitti-anchors --frames data/synthetic --split data/frame_split.csv --out cfg/yolov3-kitti.cfg

Clusters the training boxes' shapes, letterboxed to detector.img_size, by k-means with 1 - IoU
distance into as many anchors as detector.cfg has, and writes a copy of that cfg with them,
beside a JSON report of both anchor sets' mean best IoU and best possible recall."""


def detect_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kitti-detect",
        description="Draw a trained detector's boxes on images and list them in a CSV.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=DETECT_EXAMPLE,
    )
    parser.add_argument("images", nargs="+", help="image files or folders of them")
    parser.add_argument("--model", required=True, help="a detector file (best.pt or last.pt)")
    parser.add_argument("--out", required=True, help="folder for the PNGs and detections.csv")
    parser.add_argument(
        "--conf",
        type=float,
        default=0.25,
        help="keep detections scoring at least this, 0 to 1 (default 0.25)",
    )
    parser.add_argument(
        "--nms",
        type=float,
        default=0.45,
        help="suppress a box overlapping a better one of its class by more than this IoU "
        "(default 0.45)",
    )
    add_device_option(parser)
    return parser


def anchors_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kitti-anchors",
        description="Dataset anchors for the detector's cfg, by k-means with IoU distance.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=ANCHORS_EXAMPLE,
    )
    parser.add_argument("--frames", required=True, help="frames folder (images/, labels/)")
    parser.add_argument("--split", required=True, help="the frame split CSV (data/frame_split.csv)")
    parser.add_argument("--out", required=True, help="the cfg to write, with the new anchors")
    parser.add_argument(
        "--report", help="JSON of both anchor sets and their fit (default: beside --out)"
    )
    parser.add_argument(
        "--params", default="params.yaml", help="params file (detector.cfg, img_size, classes)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="the shape IoU a box's best anchor must reach to count in the best possible "
        "recall (default 0.5)",
    )
    return parser


def detect_main(argv: list[str] | None) -> None:
    args = detect_parser().parse_args(argv)
    from kitti_pipeline.detect.predict import detect_images

    detect_images(args.images, args.model, args.out, args.conf, args.nms, args.device)


def anchors_main(argv: list[str] | None) -> None:
    args = anchors_parser().parse_args(argv)
    from kitti_pipeline.detect.anchors import write_anchors

    write_anchors(args.frames, args.split, args.out, args.report, args.params, args.threshold)


def kitti_detect() -> None:
    """The `kitti-detect` console command, with one-line errors (see `core.cli.run_cli`)."""
    run_cli(detect_main)


def kitti_anchors() -> None:
    """The `kitti-anchors` console command, with one-line errors."""
    run_cli(anchors_main)
