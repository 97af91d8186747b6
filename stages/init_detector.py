"""Stage `init_detector`: the starting weights of the detector's `transfer` run.

`detector.init.source: darknet` takes the Darknet `.weights` file `detector.init.weights` from the
pretrained folder (stage `pretrained@<name>`: COCO's `yolov3.weights` in the study,
`yolov3-tiny.weights` in the demo) and checks its sha256; `synthetic` pretrains the cfg from scratch
on the generated stand-in scenes; `random` writes random weights (a stand-in where the COCO file is
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
        pretrained="folder of the pretrained files (stage pretrained@<name>)",
        out="Darknet .weights file to write",
        metrics="JSON: where the weights came from",
    )
    det = params.detector
    # The synthetic source pretrains where and as the detector trains.
    device, amp = det.train.device, det.train.amp
    info = write_init_weights(det, args.out, params.pretrained.files, args.pretrained, device, amp)
    write_json(args.metrics, info)


if __name__ == "__main__":
    run_cli(main)
