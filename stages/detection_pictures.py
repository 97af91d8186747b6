"""Stage `detection_pictures`: test frames with both runs' detections, transfer above scratch.

Draws the `detector.evaluate.pictures` test frames holding the most ground-truth objects (the
study's Figures 6 to 9), each run with its best checkpoint, ground truth in green dashes.
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
from PIL import Image

from kitti_pipeline.detector_engine import load_detector, load_split
from kitti_pipeline.figures import detection_figure
from kitti_pipeline.files import atomic_dir
from kitti_pipeline.inference import detect_frames, read_image
from kitti_pipeline.params import load_params


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--frames", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--models", required=True, help="folder holding <run>/best.pt")
    parser.add_argument("--out", required=True, help="folder of PNGs to write")
    args = parser.parse_args(argv)
    det = load_params(args.params).detector
    test = load_split(args.frames, args.split, "test", det.classes, det.img_size)
    busiest = sorted(range(len(test.stems)), key=lambda i: (-len(test.targets[i]), test.stems[i]))
    chosen = sorted(busiest[: det.evaluate.pictures])
    images_dir = Path(args.frames) / "images"
    paths = [next(images_dir.glob(f"{test.stems[i]}.*")) for i in chosen]
    images = [read_image(p) for p in paths]

    panels = [[] for _ in chosen]
    for run in det.runs:
        model, info = load_detector(Path(args.models) / run / "best.pt")
        detections = detect_frames(
            model, images, det.img_size, det.evaluate.conf_threshold, det.evaluate.nms_iou
        )
        for panel, found in zip(panels, detections, strict=True):
            panel.append((f"{run} (epoch {info['epoch']}): {len(found)} detections", found.numpy()))
    with atomic_dir(args.out) as out:
        for i, path, panel in zip(chosen, paths, panels, strict=True):
            truths = test.to_frame(i, test.targets[i][:, 1:]).numpy()
            figure = detection_figure(Image.open(path).convert("RGB"), panel, det.classes, truths)
            figure.savefig(out / f"{path.stem}.png", format="png", dpi=100)
            plt.close(figure)


if __name__ == "__main__":
    main()
