"""Stage `detection_pictures`: test frames with both runs' detections, transfer above scratch.

Draws the `detector.evaluate.pictures` test frames holding the most ground-truth objects (the
study's Figures 6 to 9), each run of the first of `detector.seeds` with its best checkpoint,
ground truth in green dashes.
"""

import matplotlib.pyplot as plt

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.files import atomic_dir
from kitti_pipeline.detect.evaluate import draw_test_frames


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        frames="frames folder",
        split="the frame split CSV",
        models="folder holding <run>-s<seed>/best.pt",
        out="folder of PNGs to write",
    )
    det = params.detector
    device = resolve_device(det.train.device)
    figures = draw_test_frames(args.models, det.seeds[0], args.frames, args.split, det, device)
    with atomic_dir(args.out) as out:
        for stem, figure in figures.items():
            figure.savefig(out / f"{stem}.png", format="png", dpi=100)
            plt.close(figure)


if __name__ == "__main__":
    run_cli(main)
