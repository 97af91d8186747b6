"""The offline stand-in for ImageNet: classifying one-object images of ten other classes.

Like ImageNet for KITTI, the task shares low-level structure with the target crops but none of
their classes, so the transfer regimes start from features that were learned, not random ones.
Each image frames its object as a crop does (its box with a margin, stretched to a square), as
ImageNet's images are centred on their object.
`init_classifier_weights` gives the starting backbone of one architecture from whichever
`classifier.init.source` the params name: this task, the real ImageNet file, or random weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from kitti_pipeline.classify.models import (
    HEAD_KEYS,
    build_classifier,
    load_backbone,
    random_backbone,
    to_device,
)
from kitti_pipeline.classify.train import FitConfig, fit, predict
from kitti_pipeline.core.device import describe_device, resolve_device
from kitti_pipeline.core.files import load_torch
from kitti_pipeline.core.params import ClassifierInitParams
from kitti_pipeline.pretrain.objects import DRAW, OBJECT_CLASSES, background, finish, object_shape
from kitti_pipeline.pretrain.real_weights import imagenet_file_name, pretrained_path

# Each side of an object's box moves out by up to 30% of the box (background shows) or in by up to
# 10% (the object is cut), drawn apart per side.
MARGIN = (-0.1, 0.3)


def render_object_image(rng: np.random.Generator, size: int, label: int) -> np.ndarray:
    """One image of class `label`: (size, size, 3) uint8.

    The object is framed as the crop stage frames one: its box, each side moved by a random
    `MARGIN`, stretched to a square (`crop.resize: stretch`), so that the features learn objects
    at the framing and proportions the target crops have. On the demo's val crops this lifted
    the frozen arm far more than pretraining longer on objects placed anywhere in a square
    (README, "What a longer stand-in pretraining buys").
    """
    s = size * 2  # drawn large, then downsampled, for smooth edges
    image, draw = background(rng, 2 * s)
    box = place_object(rng, draw, OBJECT_CLASSES[label], s)
    return frame_object(rng, image, box, size)


def place_object(
    rng: np.random.Generator, draw: ImageDraw.ImageDraw, name: str, s: int
) -> tuple[float, float, float, float]:
    """Draw a `name` whose longer side is 0.55 to 0.95 `s` at a random place of a (2s, 2s)
    canvas, at least 0.3 `s` from each edge; its box (x1, y1, w, h) in pixels."""
    w, h = object_shape(rng, name, 0.55 * s, 0.95 * s)
    x1 = rng.uniform(0.3 * s, 1.7 * s - w)
    y1 = rng.uniform(0.3 * s, 1.7 * s - h)
    DRAW[name](draw, rng, x1, y1, w, h)
    return x1, y1, w, h


def frame_object(
    rng: np.random.Generator,
    image: Image.Image,
    box: tuple[float, float, float, float],
    size: int,
) -> np.ndarray:
    """The (size, size, 3) uint8 image of the object at `box` (x1, y1, w, h) of `place_object`'s
    (2s, 2s) canvas: its box with each side moved by a random `MARGIN`, stretched to (s, s),
    mirrored half the time, then blurred, downsampled to `size` and noised."""
    x1, y1, w, h = box
    s = image.width // 2
    left, top, right, bottom = rng.uniform(*MARGIN, 4)
    frame = (x1 - left * w, y1 - top * h, x1 + (1 + right) * w, y1 + (1 + bottom) * h)
    image = image.crop(tuple(int(v) for v in frame)).resize((s, s), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return finish(rng, image, size)


@dataclass(frozen=True)
class ObjectTask:
    """A stand-in classification task: its class names, and `render(rng, size, label)`, which
    draws one (size, size, 3) uint8 image of class `label`."""

    name: str
    classes: tuple[str, ...]
    render: Callable[[np.random.Generator, int, int], np.ndarray]


# The pipeline's task: one object of ten kinds per image.
OBJECTS = ObjectTask("synthetic objects", OBJECT_CLASSES, render_object_image)


def make_object_images(
    count: int, size: int, seed: int, task: ObjectTask = OBJECTS
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` images of `task` with balanced classes.

    Returns:
        images (N, 3, size, size) uint8 and labels (N,) int64.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(task.classes)
    rng.shuffle(labels)
    images = np.stack([task.render(rng, size, int(k)) for k in labels])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def pretrain_classifier(
    arch: str,
    images: int,
    image_size: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
    amp: bool = True,
    task: ObjectTask = OBJECTS,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Train `arch` from scratch on the images of `task`, as ImageNet pretraining would.

    `amp` is autocast on CUDA (`classifier.train.amp`, see `core.device`); nothing on the CPU.

    Returns:
        The trained state dict (its head has `len(task.classes)` outputs) and a summary with
        the held-out accuracy on the task, which shows the features learned something.
    """
    print(f"pretrain {arch}: training on {describe_device(device)}")
    torch.manual_seed(seed)
    x, y = make_object_images(images, image_size, seed, task)
    cut = int(0.8 * images)
    x, y = x.to(device), y.to(device)
    model = to_device(build_classifier(arch, len(task.classes)), arch, device)
    cfg = FitConfig(
        optimizer="adam",
        lr=lr,
        batch_size=batch_size,
        epochs=epochs,
        augment=("flip",),
        cache_frozen_features=False,
        amp=amp,
    )
    history = fit(
        model,
        "scratch",
        (x[:cut], y[:cut]),
        (x[cut:], y[cut:]),
        cfg,
        seed,
        description=f"pretrain {arch}",
    )
    held_out = (predict(model, x[cut:]).argmax(1) == y[cut:]).float().mean().item()
    return model.state_dict(), {
        "task": task.name,
        "classes": list(task.classes),
        "images": images,
        "image_size": image_size,
        "epochs": epochs,
        "held_out_accuracy": held_out,
        "final_train_loss": history[-1]["train_loss"],
    }


def init_classifier_weights(
    arch: str,
    cfg: ClassifierInitParams,
    num_classes: int,
    device: str,
    amp: bool,
    pretrained: dict[str, str] | None = None,
    folder: str | Path | None = None,
) -> tuple[dict[str, torch.Tensor], dict]:
    """The starting backbone of `arch` for the transfer regimes, from `cfg.source_of(arch)`.

    `imagenet` reads torchvision's ImageNet file of `arch` from `folder`, where stage
    `pretrained@<name>` put it, checked against its pin in `pretrained` (`pretrained.files`);
    `synthetic` pretrains on this module's task, on `device` (`auto`, `cpu` or `cuda`), with
    autocast on CUDA when `amp`;
    `random` draws weights from `cfg.seed`.

    Returns:
        The backbone's state dict on the CPU (head keys dropped; checked to fit a `num_classes`
        classifier) and a summary of where it came from.

    Raises:
        ValueError: when `imagenet` is asked for and `pretrained` does not pin the file.
    """
    source = cfg.source_of(arch)
    if source == "imagenet":
        name = imagenet_file_name(arch)
        path = pretrained_path(folder, name, pretrained or {}, f"classifier.init.source {arch}")
        state = load_torch(path)
        info = {"weights": f"{arch} IMAGENET1K_V1", "file": name, "file_sha256": pretrained[name]}
    elif source == "random":
        state = random_backbone(arch, num_classes, cfg.seed)
        info = {"weights": f"{arch} random initialisation, seed {cfg.seed}"}
    else:
        state, info = pretrain_classifier(
            arch,
            cfg.pretrain_images,
            cfg.pretrain_image_size,
            cfg.pretrain_epochs,
            cfg.pretrain_batch_size,
            cfg.pretrain_lr,
            cfg.seed,
            resolve_device(device),
            amp,
        )
    backbone_state = {k: v.cpu() for k, v in state.items() if k not in HEAD_KEYS[arch]}
    # The shapes must fit before anything is saved.
    load_backbone(build_classifier(arch, num_classes), arch, backbone_state, origin=source)
    return backbone_state, info
