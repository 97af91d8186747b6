"""kitti-transfer: transfer learning on KITTI as a reproducible DVC pipeline.

Two studies share one data layer. Each subpackage is one part of the architecture and imports
only the parts below it:

    core/       params, profiles, atomic files, code version, device, data-parallel world,
                resumable checkpoints, the stages' command line          (imports nothing else)
    data/       boxes, label formats, the synthetic KITTI generator, the KITTI subset builder,
                crops, splits                                             (core)
    classify/   the crop classifiers: models, training, evaluation, model files (core, data)
    detect/     the YOLOv3 car detector: Darknet cfg and weights, YOLO head, detection data,
                training, metrics, evaluation, prediction                 (core, data)
    pretrain/   the offline stand-ins for ImageNet and COCO pretraining, and the lookup of the
                real pretrained files                                     (core, classify, detect)
    report/     tables, figures and the study's report, from metrics files (core, data)

`classify` and `detect` never import each other. The stage scripts in `stages/` wire these to
the paths and params that dvc.yaml gives them.
"""
