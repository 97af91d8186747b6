"""Training and evaluation loops for the YOLOv3 detector.

Frames are decoded and letterboxed once into a uint8 tensor (N, 3, S, S) on the training device,
with their boxes in letterboxed pixels; horizontal flips happen there per batch, boxes flipped
with them. The learning rate warms up linearly over the first `warmup_steps` steps, as Darknet's
`burn_in` does, and a loss that is not finite stops the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from kitti_pipeline.detection_data import letterbox, load_frame
from kitti_pipeline.detection_metrics import detection_summary
from kitti_pipeline.engine import autocast
from kitti_pipeline.yolo import Scale, detect, yolo_loss


@dataclass
class DetectionSet:
    images: torch.Tensor  # (N, 3, S, S) uint8, letterboxed
    targets: list[torch.Tensor]  # per frame (M, 5): class, x1, y1, x2, y2 in letterboxed pixels
    stems: list[str]

    def to(self, device) -> DetectionSet:
        return DetectionSet(
            self.images.to(device), [t.to(device) for t in self.targets], self.stems
        )


def load_detection_set(
    frames: str | Path,
    stems: list[str],
    num_classes: int,
    keep: tuple[int, ...],
    img_size: int,
) -> DetectionSet:
    """Letterbox the frames `stems` of a frames folder, keeping the classes `keep`."""
    frames = Path(frames)
    images, targets = [], []
    for stem in stems:
        image_path = next(p for p in (frames / "images").glob(f"{stem}.*"))
        image, boxes, classes = load_frame(
            image_path, frames / "labels" / f"{stem}.txt", num_classes, keep
        )
        image, boxes, _ = letterbox(image, boxes, img_size)
        images.append(image)
        targets.append(torch.cat([classes[:, None].float(), boxes], 1))
    return DetectionSet(torch.stack(images), targets, list(stems))


def flip_batch(images: torch.Tensor, targets: list[torch.Tensor], flips: torch.Tensor):
    """Mirror the images where `flips` is set, and their boxes: x -> S - x."""
    size = images.shape[-1]
    images = torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
    out = []
    for t, flip in zip(targets, flips.tolist(), strict=True):
        if flip:
            t = t.clone()
            t[:, [1, 3]] = size - t[:, [3, 1]]
        out.append(t)
    return images, out


def train_one_epoch(
    model: torch.nn.Module,
    data: DetectionSet,
    optimizer: torch.optim.Optimizer,
    scales: list[Scale],
    num_classes: int,
    batch_size: int,
    generator: torch.Generator,
    step: int,
    lr: float,
    warmup_steps: int,
    augment: bool = True,
    amp: bool = False,
    box_loss: str = "mse",
) -> tuple[dict[str, float], int]:
    """One pass over `data`.

    Returns:
        The mean of each loss term per batch, and the global step count after the epoch.
    """
    model.train()
    device = data.images.device
    n = len(data.images)
    order = torch.randperm(n, generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if augment else torch.zeros(n, dtype=bool)
    sums: dict[str, float] = {}
    batches = 0
    for batch in order.split(batch_size):
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / max(warmup_steps, 1))
        images, targets = flip_batch(
            data.images[batch], [data.targets[i] for i in batch], flips[batch].to(device)
        )
        with autocast(device, amp):
            raws = model(images.float() / 255)
        terms = yolo_loss(
            [r.float() for r in raws], scales, targets, num_classes, box_loss=box_loss
        )
        if not torch.isfinite(terms["total"]):
            raise FloatingPointError(
                f"detector loss is {terms['total'].item()} at step {step}; "
                f"lower the learning rate (now {lr})"
            )
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.item()
        batches += 1
        step += 1
    return {name: value / batches for name, value in sums.items()}, step


@torch.no_grad()
def predict_detections(
    model: torch.nn.Module,
    data: DetectionSet,
    scales: list[Scale],
    conf_threshold: float,
    nms_iou: float,
    batch_size: int = 16,
) -> list[torch.Tensor]:
    """Detections per frame in letterboxed pixels, (N, 6): x1, y1, x2, y2, score, class."""
    model.eval()
    out = []
    for start in range(0, len(data.images), batch_size):
        raws = model(data.images[start : start + batch_size].float() / 255)
        out += [d.cpu() for d in detect(raws, scales, conf_threshold, nms_iou)]
    return out


def evaluate_detector(
    model: torch.nn.Module,
    data: DetectionSet,
    scales: list[Scale],
    conf_threshold: float,
    nms_iou: float,
) -> dict[str, float]:
    """Precision, recall, F1 at `conf_threshold` and the APs, for class 0, on `data`.

    AP ranks every detection above 0.001, as AP needs the whole precision-recall curve.
    """
    detections = predict_detections(model, data, scales, 0.001, nms_iou)
    truths = [t[t[:, 0] == 0, 1:].cpu() for t in data.targets]
    mine = [d[d[:, 5] == 0] for d in detections]
    return detection_summary(mine, truths, conf_threshold)
