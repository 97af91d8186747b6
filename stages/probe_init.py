"""Stage `probe_init`: a linear probe of one architecture's starting weights against random ones.

A logistic regression on the frozen backbone features of the training crops, scored by val mCA,
for the init file's weights and for random weights (`kitti_pipeline.classify.probe`), and the
difference with its paired interval over `classifier.bootstrap` draws of the val frames: the check
that the transfer regimes start from features worth more than random ones.
"""

from kitti_pipeline.classify.probe import probe_init
from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.files import write_json


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        arch="resnet18 or mobilenet_v2",
        init="the init-weights file",
        crops="the crop stage's folder",
        split="split CSV",
        metrics="JSON: the probe's val mCA for both weights and their difference",
    )
    cfg = params.classifier
    device = resolve_device(cfg.train.device)
    result = probe_init(
        args.arch,
        args.init,
        args.crops,
        args.split,
        params.data.classes,
        cfg.init.seed,
        cfg.bootstrap,
        device,
    )
    cell = result["init_minus_random"]
    print(
        f"{args.arch}: linear probe val mCA {result['val_mCA']['init']:.3f} on the init "
        f"weights, {result['val_mCA']['random']:.3f} on random ones: difference "
        f"{cell['difference']:+.3f} [{cell['low']:+.3f}, {cell['high']:+.3f}]"
    )
    write_json(args.metrics, result)


if __name__ == "__main__":
    run_cli(main)
