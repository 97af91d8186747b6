"""Stage `init_weights`: one architecture's starting weights for the transfer regimes.

`classifier.init.source` (one for all architectures, or one per architecture): `imagenet` takes
torchvision's ImageNet file of the architecture from the pretrained folder (stage
`pretrained@<name>`); `synthetic` pretrains on the generated stand-in task; `random` draws random
weights (a control, or a stand-in where the ImageNet files are absent). Either way the file holds
the backbone only: every regime puts a new 3-class head on it.
"""

from kitti_pipeline.classify.model_files import save_init
from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import write_json
from kitti_pipeline.core.params import params_to_dict
from kitti_pipeline.core.version import code_version
from kitti_pipeline.pretrain.imagenet import init_classifier_weights


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        arch="resnet18 or mobilenet_v2",
        pretrained="folder of the pretrained files (stage pretrained@<name>)",
        out="init-weights file to write",
        metrics="JSON summary of where they came from",
    )
    cfg = params.classifier.init
    train = params.classifier.train
    source = cfg.source_of(args.arch)
    state, info = init_classifier_weights(
        args.arch,
        cfg,
        len(params.data.classes),
        train.device,
        train.amp,
        params.pretrained.files,
        args.pretrained,
    )
    # The code version goes to the metrics file only: equal weights give a byte-equal file.
    save_init(args.out, args.arch, source, state, {**info, "params": params_to_dict(cfg)})
    summary = {k: v for k, v in info.items() if not isinstance(v, list)}
    write_json(args.metrics, {"source": source, **summary, "code_version": code_version()})


if __name__ == "__main__":
    run_cli(main)
