"""Stage `compare_classifiers`: paired differences between the classifier study's arms.

For each architecture, finetune - scratch, frozen - scratch and finetune - frozen; for each
regime, ResNet18 - MobileNetV2: the difference in mCA and mF1 on the test crops, and its 95%
interval from the same frame-level bootstrap draws for every run (seeds resampled too when there
are several). See `kitti_pipeline.classify.compare`.
"""

from kitti_pipeline.classify.compare import compare_classifiers
from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import write_json


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        split="split CSV (the frame of each test crop)",
        predictions="folder of every run's prediction CSV",
        out="JSON: every comparison",
    )
    cfg = params.classifier
    inputs = (args.split, args.predictions, params.data.classes)
    write_json(
        args.out, compare_classifiers(*inputs, cfg.archs, cfg.seeds, cfg.bootstrap, cfg.arms)
    )


if __name__ == "__main__":
    run_cli(main)
