"""The classifier's command line, `kitti-classify`.

The arguments are parsed before torch is imported, so that `--help` and a mistyped option
answer at once; the work is imported only once the arguments are good.
"""

from __future__ import annotations

import argparse

from kitti_pipeline.core.cli import add_device_option, run_cli

EXAMPLE = """example:
  kitti-classify --model models/classifier/mobilenet_v2-finetune-s0.pt --out predictions/ \\
      my_crops/*.png data/kitti_subset /data/kitti/training

Takes crop images (resized to the model's crop size), frames folders in the study's layout
(images/, labels/, classes.txt: every labelled object cropped as the crop stage crops it) and
KITTI training/ folders (image_2/, label_2/), in any mix. Writes predictions.csv (image, label
line, true class where a label gives one, predicted class, every class's score) and
skipped.csv (boxes below --min-box-size)."""


def classify_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kitti-classify",
        description="Classify crops, or the labelled objects of frames, with a trained classifier.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLE,
    )
    parser.add_argument(
        "images", nargs="+", help="crop images, folders of them, frames folders or KITTI training/"
    )
    parser.add_argument("--model", required=True, help="a classifier file (models/classifier/)")
    parser.add_argument("--out", required=True, help="folder for predictions.csv")
    parser.add_argument(
        "--resize",
        default="stretch",
        choices=["stretch", "pad"],
        help="as crop.resize: stretch a box to a square, or pad it first (default stretch)",
    )
    parser.add_argument(
        "--min-box-size",
        type=float,
        default=8.0,
        help="as crop.min_box_size: skip boxes narrower or shorter, in pixels (default 8)",
    )
    add_device_option(parser)
    return parser


def classify_main(argv: list[str] | None = None) -> None:
    args = classify_parser().parse_args(argv)
    from kitti_pipeline.classify.predict import classify_images

    classify_images(args.images, args.model, args.out, args.resize, args.min_box_size, args.device)


def kitti_classify() -> None:
    """The `kitti-classify` console command, with one-line errors (see `core.cli.run_cli`)."""
    run_cli(classify_main)
