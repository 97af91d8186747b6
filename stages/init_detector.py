"""Stage `init_detector`: the starting weights of the detector's `transfer` run.

`detector.init.source: darknet` takes a Darknet `.weights` file (COCO's `yolov3.weights` in the
study) by local path or URL and checks its sha256; `synthetic` pretrains the cfg from scratch on
the generated stand-in scenes; `random` writes random weights (a stand-in where the COCO file is
absent). Either way the output is a Darknet `.weights` file, and the metrics file says how many
classes and convolutions it holds, for `train_detector`.
"""

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import write_json
from kitti_pipeline.pretrain.coco import write_init_weights


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        out="Darknet .weights file to write",
        metrics="JSON: where the weights came from",
    )
    write_json(args.metrics, write_init_weights(params.detector, args.out))


if __name__ == "__main__":
    run_cli(main)
