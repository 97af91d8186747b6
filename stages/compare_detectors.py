"""Stage `compare_detectors`: transfer - scratch on the test frames, with a paired interval.

AP@0.5, F1 at the confidence threshold and, with `label_2` files, KITTI's moderate AP40 of both
runs' best checkpoints, each difference with its 95% interval from the same frame-level
bootstrap draws (`kitti_pipeline.detect.compare`).
"""

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import write_json
from kitti_pipeline.detect.compare import compare_detectors


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        transfer="the transfer run's matches JSON",
        scratch="the scratch run's matches JSON",
        out="JSON: the comparison",
    )
    cfg = params.detector.evaluate
    write_json(
        args.out,
        compare_detectors(args.transfer, args.scratch, cfg.conf_threshold, cfg.bootstrap),
    )


if __name__ == "__main__":
    run_cli(main)
