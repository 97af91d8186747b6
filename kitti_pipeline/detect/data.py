"""Frames and boxes for the detector: class filter, letterbox, letterboxed sets.

Frames are letterboxed to `img_size`, a square side or `(width, height)`, each a multiple of 32:
scaled to fit, keeping their aspect, then padded with grey (`detector.letterbox_fill`) on both sides
of the dimension that does not fill, as Darknet's `letterbox_image` does. A KITTI frame (1242x375)
fills 416x126 of a 416 square, and all of 736x222 of a 736x224 rectangle of about the same pixel
count. Boxes travel with the image through torchvision's transforms v2 as
`tv_tensors.BoundingBoxes`, so every resize, pad, flip and affine moves them exactly as it moves the
pixels.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from kitti_pipeline.data.boxes import clip, denormalise
from kitti_pipeline.data.crops import IMAGE_SUFFIXES
from kitti_pipeline.data.labels import (
    ignored_kitti_types,
    read_classes,
    read_kitti_labels,
    read_yolo_labels,
    same_kitti_type,
)
from kitti_pipeline.data.splits import FRAME_SPLIT_FIELDS, LEFT_OUT, SPLITS

# Darknet's `letterbox_image` fills with 0.5 on its [0, 1] scale: 127.5, whose nearest uint8 grey
# is 128 (0.502 once the network's input is divided by 255).
DARKNET_FILL = 128
# The class id of a target row that is an ignored region of a `label_2` file, not an object: a
# `DontCare` region, or an object of a type the devkit ignores for the classes learnt (a van for a
# car: `data.labels.ignored_kitti_types`). It travels with the frame's boxes through letterbox,
# flips and jitter, and the loss does not punish predictions inside it (`detect.yolo.yolo_loss`).
DONT_CARE = -1


def input_shape(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """The detector's input as (width, height): `size` is a square side or [width, height].

    Raises:
        ValueError: unless it is one or two positive multiples of 32.
    """
    shape = (size, size) if isinstance(size, int) else tuple(size)
    if len(shape) != 2:
        raise ValueError(f"img_size must be a side or [width, height], got {size!r}")
    if any(not isinstance(s, int) or s <= 0 or s % 32 for s in shape):
        raise ValueError(f"img_size must be a multiple of 32, got {size}")
    return shape


def letterbox(
    image: torch.Tensor,
    boxes: torch.Tensor,
    size: int | tuple[int, int],
    fill: int = DARKNET_FILL,
) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float, float, float]]:
    """Scale `image` to fit `size` (a square side or (width, height)), keeping its aspect, and
    pad it to that size with the grey `fill`.

    Args:
        image: (3, H, W) uint8.
        boxes: (N, 4) xyxy pixels in `image`.
        size: The output's side, or (width, height); multiples of 32.
        fill: The padding's grey, 0 to 255.

    Returns:
        The (3, height, width) image, the boxes in its pixels, and `(sx, sy, left, top)` such
        that `x_out = x_in * sx + left`, `y_out = y_in * sy + top`, to map detections back.
    """
    width, height = input_shape(size)
    h, w = image.shape[-2:]
    scale = min(width / w, height / h)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    top, left = (height - new_h) // 2, (width - new_w) // 2
    img = tv_tensors.Image(image)
    bb = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w))
    img, bb = TF.resize(img, [new_h, new_w], antialias=True), TF.resize(bb, [new_h, new_w])
    padding = [left, top, width - new_w - left, height - new_h - top]
    img, bb = TF.pad(img, padding, fill=fill), TF.pad(bb, padding)
    return (
        img.as_subclass(torch.Tensor),
        bb.as_subclass(torch.Tensor),
        (new_w / w, new_h / h, float(left), float(top)),
    )


def unletterbox(
    boxes: torch.Tensor, transform: tuple[float, float, float, float], width: int, height: int
) -> torch.Tensor:
    """Map boxes from letterboxed pixels back to the original frame, clipped to it."""
    sx, sy, left, top = transform
    out = boxes.clone()
    out[:, [0, 2]] = ((boxes[:, [0, 2]] - left) / sx).clamp(0, width)
    out[:, [1, 3]] = ((boxes[:, [1, 3]] - top) / sy).clamp(0, height)
    return out


def load_frame(
    image_path: Path,
    label_path: Path,
    num_classes: int,
    keep: tuple[int, ...],
    tolerance: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A frame as (3, H, W) uint8, its boxes (N, 4) xyxy pixels and class ids (N,).

    Only labels whose class id is in `keep` are returned, renumbered 0.. in `keep` order (the
    study's detector keeps Car only). Malformed labels raise with file and line.
    """
    with Image.open(image_path) as opened:
        pixels = np.array(opened.convert("RGB"))
    h, w = pixels.shape[:2]
    boxes, classes = [], []
    for label in read_yolo_labels(label_path, num_classes, tolerance):
        if label.class_id in keep:
            boxes.append(clip(denormalise(label.cx, label.cy, label.w, label.h, w, h), w, h))
            classes.append(keep.index(label.class_id))
    return (
        torch.from_numpy(pixels).permute(2, 0, 1).contiguous(),
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(classes, dtype=torch.int64),
    )


@dataclass
class DetectionSet:
    images: torch.Tensor  # (N, 3, height, width) uint8, letterboxed
    # Per frame (M, 5): class, x1, y1, x2, y2 in letterboxed pixels; class DONT_CARE: a region.
    targets: list[torch.Tensor]
    stems: list[str]
    letterboxes: list[tuple[float, float, float, float]]  # per frame (sx, sy, left, top)
    sizes: list[tuple[int, int]]  # per frame original (width, height)
    dont_care: bool = False  # whether some frame's targets hold DONT_CARE rows

    def to(self, device) -> DetectionSet:
        return DetectionSet(
            self.images.to(device),
            [t.to(device) for t in self.targets],
            self.stems,
            self.letterboxes,
            self.sizes,
            self.dont_care,
        )

    def select(self, index: slice) -> DetectionSet:
        """The frames `index` (a slice) of this set."""
        return DetectionSet(
            self.images[index],
            self.targets[index],
            self.stems[index],
            self.letterboxes[index],
            self.sizes[index],
            self.dont_care,
        )

    def to_frame(self, index: int, rows: torch.Tensor) -> torch.Tensor:
        """Rows `x1, y1, x2, y2, ...` of frame `index` from letterboxed to original pixels."""
        out = rows.clone()
        out[:, :4] = unletterbox(rows[:, :4], self.letterboxes[index], *self.sizes[index])
        return out


def load_detection_set(
    frames: str | Path,
    stems: list[str],
    num_classes: int,
    keep: tuple[int, ...],
    img_size: int | tuple[int, int],
    fill: int = DARKNET_FILL,
    ignore_types: tuple[str, ...] = ("DontCare",),
) -> DetectionSet:
    """Letterbox the frames `stems` of a frames folder, keeping the classes `keep`; `fill` is
    the padding's grey.

    Where the folder has KITTI `label_2` files, each frame's objects of the `ignore_types`
    (compared case-blind) join its targets as regions of class `DONT_CARE`.
    """
    frames = Path(frames)
    images, targets, letterboxes, sizes, dont_care = [], [], [], [], False
    for stem in stems:
        image_path = next(p for p in (frames / "images").glob(f"{stem}.*"))
        image, boxes, classes = load_frame(
            image_path, frames / "labels" / f"{stem}.txt", num_classes, keep
        )
        native = frames / "label_2" / f"{stem}.txt"
        if native.exists():
            objects = read_kitti_labels(native)
            regions = [
                o.box for o in objects if any(same_kitti_type(o.type, t) for t in ignore_types)
            ]
            boxes = torch.cat([boxes, torch.tensor(regions, dtype=torch.float32).reshape(-1, 4)])
            classes = torch.cat([classes, torch.full((len(regions),), DONT_CARE)])
            dont_care |= bool(regions)
        sizes.append((image.shape[-1], image.shape[-2]))
        image, boxes, transform = letterbox(image, boxes, img_size, fill)
        images.append(image)
        targets.append(torch.cat([classes[:, None].float(), boxes], 1))
        letterboxes.append(transform)
    if not images:
        width, height = input_shape(img_size)
        return DetectionSet(torch.zeros(0, 3, height, width, dtype=torch.uint8), [], [], [], [])
    return DetectionSet(torch.stack(images), targets, list(stems), letterboxes, sizes, dont_care)


def load_split(
    frames: str | Path,
    split_path: str | Path,
    split: str,
    classes: tuple[str, ...],
    img_size: int | tuple[int, int],
    fill: int = DARKNET_FILL,
) -> DetectionSet:
    """The frames of one split, letterboxed (padded with the grey `fill`), keeping `classes`
    (numbered 0.. in that order), with the `label_2` types the devkit ignores for them as
    regions (`data.labels.ignored_kitti_types`).

    Args:
        frames: A frames folder (`images/`, `labels/`, `classes.txt`).
        split_path: The frame split file (`data.splits.frame_split`).
        split: `train`, `val` or `test`.
        classes: Names from the folder's `classes.txt` the detector learns.
        img_size: The letterboxed side, or (width, height).

    Raises:
        ValueError: naming a class that `classes.txt` does not list.
    """
    frames = Path(frames)
    names = read_classes(frames / "classes.txt")
    for name in classes:
        if name not in names:
            raise ValueError(f"detector class {name!r} is not in {frames / 'classes.txt'}: {names}")
    chosen = read_frame_split(split_path, frames)[split]
    keep = tuple(names.index(name) for name in classes)
    return load_detection_set(
        frames, chosen, len(names), keep, img_size, fill, ignored_kitti_types(classes)
    )


def read_frame_split(path: str | Path, frames: str | Path) -> dict[str, list[str]]:
    """Split name -> the frames of a frame split file (`data.splits.frame_split`), in order.

    Raises:
        ValueError: naming the file, for a header other than `FRAME_SPLIT_FIELDS`, a split
            name it does not know, or a frame with no image in `frames`.
    """
    path, images = Path(path), Path(frames) / "images"
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != FRAME_SPLIT_FIELDS:
            raise ValueError(
                f"{path}: header {reader.fieldnames} is not a frame split's "
                f"{FRAME_SPLIT_FIELDS} (the split stage writes data/frame_split.csv)"
            )
        rows = list(reader)
    stems = {p.stem for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    out = {name: [] for name in SPLITS}
    for line, row in enumerate(rows, start=2):
        if row["split"] == LEFT_OUT:
            continue
        if row["split"] not in out:
            raise ValueError(f"{path}:{line}: unknown split {row['split']!r}")
        if row["frame"] not in stems:
            raise ValueError(f"{path}:{line}: frame {row['frame']!r} has no image in {images}")
        out[row["split"]].append(row["frame"])
    return out
