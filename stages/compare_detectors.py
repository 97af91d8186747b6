"""Stage `compare_detectors`: every detector run's figures with 95% intervals, and transfer -
scratch and each regime against the zero-shot head with paired ones.

The frame-level bootstrap draws (and, with several seeds, draws of the seeds) are the same for
every run: each run's best and last checkpoints get intervals for precision, recall, AP@0.5, F1,
AP@[.5:.95] and, with `label_2` files, KITTI's AP40 by level; the best checkpoints' differences
in AP@0.5, F1, AP@[.5:.95] and KITTI moderate AP40 get theirs (`kitti_pipeline.detect.compare`).
"""

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import write_json
from kitti_pipeline.detect.compare import compare_detectors


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        matches="folder of <run>-s<seed>.json matches files",
        out="JSON: the comparison",
    )
    det = params.detector
    cfg = det.evaluate
    write_json(
        args.out,
        compare_detectors(args.matches, det.runs, det.seeds, cfg.conf_threshold, cfg.bootstrap),
    )


if __name__ == "__main__":
    run_cli(main)
