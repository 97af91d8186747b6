"""Stage `init_detector`: the starting weights of the detector's `transfer` run.

`detector.init.source: darknet` takes a Darknet `.weights` file (COCO's `yolov3.weights` in the
study) by local path or URL and checks its sha256; `synthetic` pretrains the cfg from scratch on
the generated ten-class source task; `random` writes random weights (a stand-in where the COCO
file is absent). Either way the output is a Darknet `.weights` file, and the
metrics file says how many classes and convolutions it holds, for `train_detector`.
"""

import argparse
import shutil

import torch

from kitti_pipeline.darknet import build_darknet, transfer_weights, write_weights
from kitti_pipeline.files import atomic_path, sha256_file, write_json
from kitti_pipeline.params import load_params
from kitti_pipeline.provenance import resolve_device
from kitti_pipeline.source_scenes import pretrain_detector_on_source, pretrain_schedule
from kitti_pipeline.source_task import SOURCE_CLASSES
from kitti_pipeline.weights import fetch_weights


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="Darknet .weights file to write")
    parser.add_argument("--metrics", required=True, help="JSON: where the weights came from")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    det = params.detector
    cfg = det.init

    if cfg.source == "darknet":
        if cfg.weights is None:
            raise SystemExit("detector.init.source is darknet, but detector.init.weights is null")
        path = fetch_weights(cfg.weights, cfg.sha256)
        classes, convolutions, info = cfg.weights_classes, cfg.convolutions, {}

        def write(tmp):
            shutil.copyfile(path, tmp)
    elif cfg.source == "random":
        torch.manual_seed(cfg.seed)
        model = build_darknet(det.cfg, cfg.weights_classes)
        classes, convolutions = cfg.weights_classes, None
        info = {"task": f"random initialisation, seed {cfg.seed}"}

        def write(tmp):
            write_weights(model, tmp)
    else:
        schedule = pretrain_schedule(cfg, det.train.device, det.train.amp)
        model, info = pretrain_detector_on_source(
            det.cfg, cfg.pretrain_frames, det.img_size, schedule, resolve_device(det.train.device)
        )
        classes, convolutions = len(SOURCE_CLASSES), None

        def write(tmp):
            write_weights(model, tmp)

    with atomic_path(args.out) as tmp:
        write(tmp)
        # The file must load into the detector before anything downstream relies on it.
        loaded = transfer_weights(
            build_darknet(det.cfg, len(det.classes)), tmp, det.cfg, classes, convolutions
        )
    write_json(
        args.metrics,
        {
            "source": cfg.source,
            "file_classes": classes,
            "file_convolutions": convolutions,
            "loaded_convolutions": loaded["loaded"],
            "sha256": sha256_file(args.out),
            **{k: v for k, v in info.items() if not isinstance(v, list)},
        },
    )


if __name__ == "__main__":
    main()
