"""Stage `detector_anchors`: the cfg the detector trains from, with the anchors `detector.anchors`
chooses, and how well the cfg's anchors and the dataset's fit the training boxes.

`cfg` copies `detector.cfg` unchanged; `dataset` writes it with k-means anchors of the training
boxes letterboxed to `detector.img_size` (`kitti_pipeline.detect.anchors`). Either way the
metrics give the mean best IoU and best possible recall of both anchor sets.
"""

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import write_json, write_text
from kitti_pipeline.detect.anchors import anchor_report, with_anchors


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        frames="frames folder (images/, labels/)",
        split="the frame split CSV",
        out="the cfg to train from",
        metrics="JSON: both anchor sets and their fit",
    )
    det = params.detector
    report, cfg_text = anchor_report(args.frames, args.split, det)
    if det.anchors == "dataset":
        cfg_text = with_anchors(cfg_text, report["dataset_anchors"]["anchors"])
    write_text(args.out, cfg_text)
    write_json(args.metrics, {"used": det.anchors, **report})


if __name__ == "__main__":
    run_cli(main)
