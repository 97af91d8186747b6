"""Stage `init_weights`: one architecture's starting weights for the transfer regimes.

`classifier.init.source: imagenet` takes torchvision's ImageNet weights from a local folder or the
torch hub cache; `synthetic` pretrains on the generated source task; `random` draws random weights
(a control, or a stand-in where the ImageNet files are absent). Either way the file holds the
backbone only: every regime puts a new 3-class head on it.
"""

import argparse

import torch

from kitti_pipeline.classifiers import HEAD_KEYS, build_classifier, load_backbone
from kitti_pipeline.files import atomic_path, write_json
from kitti_pipeline.params import load_params, params_to_dict
from kitti_pipeline.provenance import code_version, resolve_device
from kitti_pipeline.source_task import pretrain_on_source
from kitti_pipeline.weights import load_imagenet_state, save_init


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--arch", required=True)
    parser.add_argument("--out", required=True, help="init-weights file to write")
    parser.add_argument("--metrics", required=True, help="JSON summary of where they came from")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    cfg = params.classifier.init

    if cfg.source == "imagenet":
        state = load_imagenet_state(args.arch, cfg.imagenet_dir)
        info = {"weights": f"{args.arch} IMAGENET1K_V1"}
    elif cfg.source == "random":
        torch.manual_seed(cfg.seed)
        state = build_classifier(args.arch, len(params.data.classes)).state_dict()
        info = {"weights": f"{args.arch} random initialisation, seed {cfg.seed}"}
    else:
        state, info = pretrain_on_source(
            args.arch,
            cfg.pretrain_images,
            cfg.pretrain_image_size,
            cfg.pretrain_epochs,
            cfg.pretrain_batch_size,
            cfg.pretrain_lr,
            cfg.seed,
            resolve_device(params.classifier.train.device),
        )
    backbone_state = {k: v.cpu() for k, v in state.items() if k not in HEAD_KEYS[args.arch]}
    load_backbone(
        build_classifier(args.arch, len(params.data.classes)),
        args.arch,
        backbone_state,
        source=cfg.source,
    )  # the shapes fit before anything is saved
    with atomic_path(args.out) as tmp:
        save_init(
            tmp,
            args.arch,
            cfg.source,
            backbone_state,
            {**info, "code_version": code_version(), "params": params_to_dict(cfg)},
        )
    write_json(
        args.metrics,
        {"source": cfg.source, **{k: v for k, v in info.items() if not isinstance(v, list)}},
    )


if __name__ == "__main__":
    main()
