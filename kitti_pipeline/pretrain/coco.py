"""The offline stand-in for COCO: detecting the ten pretraining objects in generated scenes.

Each square frame holds one to six of the objects in `objects` (buses, trucks, traffic lights,
...), of any size from 6% to 60% of the side, boxed and labelled. Like COCO for KITTI, it is a
detection task over many kinds of things in general scenes, sharing low-level structure with cars
(wheels, windows, silhouettes) but not its class or its street scenes, so the `transfer` run
starts from a detector that learned to find objects, not cars. `write_init_weights` writes the
detector's starting weights from whichever `detector.init.source` the params name: a real Darknet
file (COCO's `yolov3.weights` or `yolov3-tiny.weights`), this task, or random weights. The demo
transfers from the real `yolov3-tiny.weights`; this task stays for a cfg that no real file fits
(such as `cfg/yolov3-tiny-small.cfg`), offline.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from kitti_pipeline.core.device import describe_device, resolve_device
from kitti_pipeline.core.files import atomic_path, sha256_file
from kitti_pipeline.core.params import (
    DetectorInitParams,
    DetectorParams,
    DetectorTrainParams,
    params_to_dict,
)
from kitti_pipeline.detect.darknet import (
    Darknet,
    build_darknet,
    init_prediction_biases,
    transfer_weights,
    write_weights,
)
from kitti_pipeline.detect.data import DetectionSet
from kitti_pipeline.detect.metrics import class_summary
from kitti_pipeline.detect.predict import predict_detections
from kitti_pipeline.detect.train import fit_detector
from kitti_pipeline.detect.yolo import scales_of
from kitti_pipeline.pretrain.objects import DRAW, OBJECT_CLASSES, background, finish, object_shape
from kitti_pipeline.pretrain.real_weights import pretrained_path


def render_object_scene(
    rng: np.random.Generator, size: int, max_objects: int = 6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A scene of 1 to `max_objects` pretraining objects.

    Objects take 6% to 60% of the side and overlap each other by at most IoU 0.2, so every
    labelled object stays visible; like COCO's, the frames are square-ish photos of many kinds
    of things, not street scenes.

    Returns:
        The image (size, size, 3) uint8, boxes (M, 4) xyxy pixels and class ids (M,).
    """
    scale = 2  # draw large, then downsample, for smooth edges
    s = size * scale
    image, draw = background(rng, s)
    boxes, labels = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.integers(len(OBJECT_CLASSES)))
        w, h = object_shape(rng, OBJECT_CLASSES[label], 0.06 * s, 0.6 * s)
        x1, y1 = rng.uniform(0, s - w), rng.uniform(0, s - h)
        box = torch.tensor([x1, y1, x1 + w, y1 + h], dtype=torch.float64)
        if boxes and box_iou(box[None], torch.stack(boxes)).max() > 0.2:
            continue
        DRAW[OBJECT_CLASSES[label]](draw, rng, x1, y1, w, h)
        boxes.append(box)
        labels.append(label)
    pixels = finish(rng, image, size)
    return pixels, torch.stack(boxes).float().numpy() / scale, np.array(labels, dtype=np.int64)


def make_object_scenes(count: int, size: int, seed: int) -> DetectionSet:
    """`count` object scenes of `size` x `size`, boxes in their pixels."""
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for _ in range(count):
        pixels, boxes, labels = render_object_scene(rng, size)
        images.append(torch.from_numpy(pixels).permute(2, 0, 1))
        targets.append(
            torch.cat([torch.from_numpy(labels)[:, None].float(), torch.from_numpy(boxes)], 1)
        )
    return DetectionSet(
        torch.stack(images).contiguous(),
        targets,
        [f"source_{i:06d}" for i in range(count)],
        [(1.0, 1.0, 0.0, 0.0)] * count,
        [(size, size)] * count,
    )


def pretrain_schedule(cfg: DetectorInitParams, device: str, amp: bool) -> DetectorTrainParams:
    """The pretraining run of `cfg`: Adam, flips, squared-error boxes, one val pass at the end."""
    return DetectorTrainParams(
        optimizer="adam",
        lr=cfg.pretrain_lr,
        momentum=0.9,
        weight_decay=0.0005,
        batch_size=cfg.pretrain_batch_size,
        epochs=cfg.pretrain_epochs,
        warmup_steps=20,
        warmup_power=1.0,
        eval_every=cfg.pretrain_epochs,
        keep_checkpoints=False,
        flip=True,
        scale=0.0,
        translate=0.0,
        colour=0.0,
        box_loss="mse",
        small_box_scale=False,
        ignore_iou=0.5,
        device=device,
        amp=amp,
        compile=False,
    )


def pretrain_detector(
    cfg_path: str | Path,
    frames: int,
    img_size: int,
    train: DetectorTrainParams,
    seed: int,
    device: torch.device,
) -> tuple[Darknet, dict]:
    """Train a Darknet model from scratch on the object scenes, as COCO training would.

    Args:
        cfg_path: The detector's cfg; the model gets one class per object class.
        frames: Scenes generated; a fifth is held out.
        img_size: Their side in pixels.
        train: The schedule (epochs, lr, ...) of the pretraining.
        seed: Draws the scenes, the weights and the batches.
        device: Where to train.

    Returns:
        The trained model and a summary with the held-out AP@0.5 of each object class.
    """
    print(f"pretrain detector: training on {describe_device(device)}")
    data = make_object_scenes(frames, img_size, seed).to(device)
    cut = int(0.8 * frames)
    data, held_out = data.select(slice(0, cut)), data.select(slice(cut, frames))
    torch.manual_seed(seed)
    model = build_darknet(cfg_path, len(OBJECT_CLASSES))
    init_prediction_biases(model)
    model.to(device)
    history, _ = fit_detector(
        model, data, held_out, train, 0.45, seed=seed, description="pretrain detector"
    )
    detections, _ = predict_detections(model, held_out, scales_of(model), 0.001, 0.45)
    ap = {
        name: class_summary(detections, held_out, k, 0.25)["AP50"]
        for k, name in enumerate(OBJECT_CLASSES)
    }
    return model, {
        "task": "synthetic object scenes",
        "classes": list(OBJECT_CLASSES),
        "frames": frames,
        "img_size": img_size,
        "epochs": train.epochs,
        "held_out_mAP50": float(np.mean(list(ap.values()))),
        "held_out_AP50": ap,
        "final_train_loss": history[-1]["train_total"],
    }


def write_init_weights(
    det: DetectorParams,
    out: str | Path,
    pretrained: dict[str, str],
    folder: str | Path,
    device: str = "cpu",
    amp: bool = False,
) -> dict:
    """Write the `transfer` run's starting weights as a Darknet `.weights` file, atomically.

    `darknet` copies the file `det.init.weights` from `folder`, where stage `pretrained@<name>`
    put it, after checking it against its pin in `pretrained` (`pretrained.files`); `synthetic`
    pretrains `det.cfg` on this module's scenes; `random` writes random weights from
    `det.init.seed`. The file must load into the detector (with the head `det.init.head_classes`
    asks for) before it replaces `out`. `device` (`auto`, `cpu` or `cuda`) and `amp` are where and
    how `synthetic` pretrains.

    Returns:
        The init metrics: source, the file (name and sha256), the classes and convolutions it
        holds, the convolutions loaded and the head classes carried, a summary of where it came
        from and the init params.

    Raises:
        ValueError: when `darknet` is asked for without a weights file, or a carried head
            without one.
    """
    cfg = det.init
    if cfg.head_classes is not None and cfg.source != "darknet":
        raise ValueError(
            f"detector.init.head_classes carries a Darknet file's head; source is {cfg.source}"
        )
    if cfg.source == "darknet":
        if cfg.weights is None:
            raise ValueError("detector.init.source is darknet, but detector.init.weights is null")
        path = pretrained_path(folder, cfg.weights, pretrained, "detector.init.weights")
        classes, convolutions, checked = cfg.weights_classes, cfg.convolutions, path
        info = {"file": cfg.weights, "file_sha256": pretrained[cfg.weights]}

        def write(tmp: Path) -> None:
            shutil.copyfile(path, tmp)
    else:
        if cfg.source == "random":
            torch.manual_seed(cfg.seed)
            model = build_darknet(det.cfg, cfg.weights_classes)
            classes = cfg.weights_classes
            info = {"task": f"random initialisation, seed {cfg.seed}"}
        else:
            schedule = pretrain_schedule(cfg, device, amp)
            model, info = pretrain_detector(
                det.cfg,
                cfg.pretrain_frames,
                cfg.pretrain_size,
                schedule,
                cfg.seed,
                resolve_device(device),
            )
            classes = len(OBJECT_CLASSES)
        convolutions, checked = None, None

        def write(tmp: Path) -> None:
            write_weights(model, tmp)

    with atomic_path(out) as tmp:
        write(tmp)
        # The user's own file is checked as itself, so that an error names it, not `tmp`.
        loaded = transfer_weights(
            build_darknet(det.cfg, len(det.classes)),
            checked or tmp,
            det.cfg,
            classes,
            convolutions,
            cfg.head_classes,
        )
    return {
        "source": cfg.source,
        "file_classes": classes,
        "file_convolutions": convolutions,
        "head_classes": None if cfg.head_classes is None else list(cfg.head_classes),
        "loaded_convolutions": loaded["loaded"],
        "sha256": sha256_file(out),
        **{k: v for k, v in info.items() if not isinstance(v, list)},
        "params": params_to_dict(cfg),  # what made the file, whichever source it names
    }
