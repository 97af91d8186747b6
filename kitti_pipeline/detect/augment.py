"""The detector's augmentation: per-batch flips on the training device, per-frame affine and
colour jitter (transforms v2) on the CPU; boxes move with the pixels."""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from kitti_pipeline.detect.data import DARKNET_FILL


def augmentation(
    flip: bool, scale: float, translate: float, colour: float, fill: int = DARKNET_FILL
) -> v2.Compose:
    """Random flip, scale/translate and colour jitter that move boxes with the pixels; what the
    affine uncovers is filled with the grey `fill`, as the letterbox pads.

    Boxes pushed (almost) out of the frame are removed by `SanitizeBoundingBoxes`, as any
    detector's augmentation does: the object is no longer in the picture.
    """
    steps = []
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    if scale or translate:
        steps.append(
            v2.RandomAffine(
                degrees=0,
                translate=(translate, translate),
                scale=(1 - scale, 1 + scale),
                fill=fill,
            )
        )
    if colour:
        steps.append(v2.ColorJitter(brightness=colour, contrast=colour, saturation=colour))
    steps.append(v2.SanitizeBoundingBoxes(min_size=2, labels_getter=lambda inputs: inputs[2]))
    return v2.Compose(steps)


def flip_batch(images: torch.Tensor, targets: list[torch.Tensor], flips: torch.Tensor):
    """Mirror the images where `flips` (a CPU tensor) is set, and their boxes: x -> S - x."""
    size = images.shape[-1]
    mirrored = flips.to(images.device, non_blocking=True).view(-1, 1, 1, 1)
    images = torch.where(mirrored, images.flip(-1), images)
    out = []
    for t, flip in zip(targets, flips.tolist(), strict=True):
        if flip:
            t = t.clone()
            t[:, [1, 3]] = size - t[:, [3, 1]]
        out.append(t)
    return images, out


def jitter_batch(
    images: torch.Tensor, targets: list[torch.Tensor], transform: v2.Transform
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Apply `transform` frame by frame, on the CPU; boxes pushed out of the frame go."""
    size = images.shape[-2:]
    out_images, out_targets = [], []
    for image, target in zip(images.cpu(), targets, strict=True):
        boxes = tv_tensors.BoundingBoxes(target[:, 1:].cpu(), format="XYXY", canvas_size=size)
        image, boxes, classes = transform(tv_tensors.Image(image), boxes, target[:, 0].cpu())
        out_images.append(image.as_subclass(torch.Tensor))
        out_targets.append(
            torch.cat([classes[:, None], boxes.as_subclass(torch.Tensor)], 1).to(target.device)
        )
    return torch.stack(out_images).to(images.device), out_targets
