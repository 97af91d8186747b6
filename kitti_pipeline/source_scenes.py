"""The detector's source task: the offline stand-in for COCO.

Each square frame holds one to six objects of the classifier source task's ten classes (buses,
trucks, traffic lights, ...), of any size from 6% to 60% of the side, boxed and labelled. Like
COCO for KITTI, it is a detection task over many kinds of things in general scenes, sharing
low-level structure with cars (wheels, windows, silhouettes) but not its class or its street
scenes, so the `transfer` run starts from a detector that learned to find objects, not cars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from kitti_pipeline.darknet import Darknet, build_darknet, init_prediction_biases
from kitti_pipeline.detector_engine import (
    DetectionSet,
    class_summary,
    fit_detector,
    predict_detections,
)
from kitti_pipeline.params import DetectorInitParams, DetectorTrainParams
from kitti_pipeline.source_task import DRAW, SOURCE_CLASSES, background, finish, object_shape
from kitti_pipeline.yolo import scales_of


def render_source_frame(
    rng: np.random.Generator, size: int, max_objects: int = 6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A scene for the detection source task: 1 to `max_objects` source objects.

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
        label = int(rng.integers(len(SOURCE_CLASSES)))
        w, h = object_shape(rng, SOURCE_CLASSES[label], 0.06 * s, 0.6 * s)
        x1, y1 = rng.uniform(0, s - w), rng.uniform(0, s - h)
        box = torch.tensor([x1, y1, x1 + w, y1 + h], dtype=torch.float64)
        if boxes and box_iou(box[None], torch.stack(boxes)).max() > 0.2:
            continue
        DRAW[SOURCE_CLASSES[label]](draw, rng, x1, y1, w, h)
        boxes.append(box)
        labels.append(label)
    pixels = finish(rng, image, size)
    return pixels, torch.stack(boxes).float().numpy() / scale, np.array(labels, dtype=np.int64)


def make_source_frames(count: int, size: int, seed: int) -> DetectionSet:
    """`count` detection source frames of `size` x `size`, boxes in their pixels."""
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for _ in range(count):
        pixels, boxes, labels = render_source_frame(rng, size)
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
        eval_every=cfg.pretrain_epochs,
        flip=True,
        scale=0.0,
        translate=0.0,
        colour=0.0,
        box_loss="mse",
        ignore_iou=0.5,
        seed=cfg.seed,
        device=device,
        amp=amp,
    )


def pretrain_detector_on_source(
    cfg_path: str | Path,
    frames: int,
    img_size: int,
    train: DetectorTrainParams,
    device: torch.device,
) -> tuple[Darknet, dict]:
    """Train a Darknet model from scratch on the detection source task, as COCO training would.

    Args:
        cfg_path: The detector's cfg; the model gets one class per source class.
        frames: Source frames generated; a fifth is held out.
        img_size: Their side in pixels.
        train: The schedule (epochs, lr, seed, ...) of the pretraining.
        device: Where to train.

    Returns:
        The trained model and a summary with the held-out AP@0.5 of each source class.
    """
    data = make_source_frames(frames, img_size, train.seed).to(device)
    cut = int(0.8 * frames)
    data, held_out = data.select(slice(0, cut)), data.select(slice(cut, frames))
    torch.manual_seed(train.seed)
    model = build_darknet(cfg_path, len(SOURCE_CLASSES))
    init_prediction_biases(model)
    model.to(device)
    history = fit_detector(
        model, data, held_out, train, 0.25, 0.45, description="pretrain detector"
    )
    detections, _ = predict_detections(model, held_out, scales_of(model), 0.001, 0.45)
    ap = {
        name: class_summary(detections, held_out, k, 0.25)["AP50"]
        for k, name in enumerate(SOURCE_CLASSES)
    }
    return model, {
        "task": "synthetic object scenes",
        "classes": list(SOURCE_CLASSES),
        "frames": frames,
        "img_size": img_size,
        "epochs": train.epochs,
        "held_out_mAP50": float(np.mean(list(ap.values()))),
        "held_out_AP50": ap,
        "final_train_loss": history[-1]["train_total"],
    }
