"""COCO yolov3-tiny's own car detector, zero-shot, on a frames folder: the project's end-to-end
reading of the real file (letterbox, network, decoding, NMS, AP) at several input sizes.

The one-class detector is built from `yolov3-tiny.weights` with the head carried over from
COCO's `car` rows (`detector.init.head_classes: [2]`), so it scores each box as the 80-class
network scores its car; nothing is trained. Every frame of the folder is scored, AP@0.5 over
every car of its YOLO labels, with the frame-bootstrap 95% interval of the evaluation stage.

    kitti-subset --training /path/to/kitti/training --out /tmp/frames --frames 70
    python bench/coco_zero_shot.py --frames /tmp/frames --sizes 416 608 832

writes bench/results/coco_zero_shot.json (or `--out`). A size is a square's side or `WxH`
(`640x192`); `--split data/frame_split.csv --part test` scores only the frames of one part of the
pipeline's frame split, the transfer detector's epoch 0 on its own test frames.
"""

import argparse
from pathlib import Path

import torch
from timing import write_results

from kitti_pipeline.core.bootstrap import frame_resamples, percentile_interval
from kitti_pipeline.data.labels import read_classes
from kitti_pipeline.detect.darknet import build_darknet, fuse_batchnorm, transfer_weights
from kitti_pipeline.detect.data import input_shape, load_detection_set, read_frame_split
from kitti_pipeline.detect.matching import rank_matches
from kitti_pipeline.detect.metrics import class_summary, resampled_average_precision
from kitti_pipeline.detect.predict import predict_detections
from kitti_pipeline.detect.yolo import scales_of
from kitti_pipeline.pretrain.real_weights import KNOWN_FILES, fetch_pretrained

ROOT = Path(__file__).resolve().parents[1]
CFG = ROOT / "cfg/yolov3-tiny.cfg"


def input_size(text: str) -> int | list[int]:
    """A square's side (`416`) or `WxH` (`640x192`)."""
    return [int(v) for v in text.split("x")] if "x" in text else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", required=True, help="a frames folder (kitti-subset's)")
    parser.add_argument("--sizes", nargs="+", type=input_size, default=[416, 608, 832])
    parser.add_argument("--split", help="a frame split file (data/frame_split.csv)")
    parser.add_argument("--part", default="test", help="the part of --split to score")
    parser.add_argument("--out", default=str(ROOT / "bench/results/coco_zero_shot.json"))
    args = parser.parse_args()

    known = KNOWN_FILES["yolov3-tiny.weights"]
    path, _ = fetch_pretrained(known.name, known.sha256)
    model = build_darknet(CFG, 1)
    transfer_weights(model, path, CFG, 80, head_classes=(2,))
    fused = fuse_batchnorm(model)
    frames = Path(args.frames)
    names = read_classes(frames / "classes.txt")
    if args.split:
        stems = read_frame_split(args.split, frames)[args.part]
    else:
        stems = sorted(p.stem for p in (frames / "images").iterdir())
    rows = {}
    for size in args.sizes:
        data = load_detection_set(frames, stems, len(names), (names.index("Car"),), size)
        detections, _ = predict_detections(fused, data, scales_of(fused), 0.001, 0.45)
        summary = class_summary(detections, data, 0, 0.25)
        truths = [t[t[:, 0] == 0, 1:] for t in data.targets]  # DontCare rows are class -1
        matches = rank_matches(detections, truths, 0.5)
        draws = resampled_average_precision(matches, frame_resamples(len(stems), 1000))
        low, high = percentile_interval(draws)
        rows["x".join(map(str, input_shape(size)))] = {
            "AP50": summary["AP50"],
            "AP50_ci95": [low, high],
            "AP50_95": summary["AP50_95"],
            "cars": summary["ground_truths"],
        }
        print(f"{size}: AP@0.5 {summary['AP50']:.3f} [{low:.3f}, {high:.3f}], {len(stems)} frames")
    write_results(
        args.out,
        torch.device("cpu"),
        frames=len(stems),
        split=f"{args.split} {args.part}" if args.split else None,
        weights=known.name,
        sizes=rows,
    )


if __name__ == "__main__":
    main()
