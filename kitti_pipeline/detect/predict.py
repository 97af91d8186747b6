"""Running a detector on frames: batched prediction, and `kitti-detect`'s work (its command
line is `detect.commands`).

    kitti-detect --model models/detector/transfer-s0/best.pt --out detections/ my_frames/*.png

letterboxes each image to the model's `img_size`, detects with BatchNorm folded into the
convolutions, maps the boxes back to the image's pixels, and writes one PNG per image with the
boxes and confidences drawn, plus `detections.csv` (image, class, score, x1, y1, x2, y2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kitti_pipeline.core.device import autocast, resolve_device
from kitti_pipeline.core.files import atomic_path, write_csv
from kitti_pipeline.data.crops import IMAGE_SUFFIXES
from kitti_pipeline.detect.darknet import Darknet, fuse_batchnorm, model_classes
from kitti_pipeline.detect.data import DARKNET_FILL, DetectionSet, letterbox
from kitti_pipeline.detect.model_files import load_detector
from kitti_pipeline.detect.yolo import Scale, detect, scales_of, yolo_loss

# The detector autocasts in bfloat16 on a CPU with native bfloat16 (`core.device`):
# bench/cpu_autocast.py measured its training step 1.8x to 2.3x faster there.
CPU_BF16 = True
# Every detection above this score is ranked when a checkpoint is scored: AP needs the whole
# precision-recall curve.
SCORE_FLOOR = 0.001


def as_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 frames as the network's float input in [0, 1], channels_last: faster convolutions
    on CUDA and on the CPU (bench/cpu_autocast.py: 1.4x to 1.8x for the demo's training step)."""
    return (images.float() / 255).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_detections(
    model: torch.nn.Module,
    data: DetectionSet,
    scales: list[Scale],
    conf_threshold: float,
    nms_iou: float,
    batch_size: int = 16,
    num_classes: int | None = None,
    amp: bool = False,
) -> tuple[list[torch.Tensor], float | None]:
    """Detections per frame in letterboxed pixels, and the mean loss when `num_classes` is given.

    `amp` autocasts as training does (`core.device`, bfloat16 on a CPU that has it).

    Returns:
        Per frame (N, 6): x1, y1, x2, y2, score, class, best first, on the CPU; and the loss
        per frame (None without `num_classes`).
    """
    model.eval()
    out, loss = [], 0.0
    for start in range(0, len(data.images), batch_size):
        images = data.images[start : start + batch_size]
        with autocast(images.device, amp, cpu_bf16=CPU_BF16):
            raws = [r.float() for r in model(as_input(images))]
        if num_classes is not None:
            targets = data.targets[start : start + batch_size]
            terms = yolo_loss(raws, scales, targets, num_classes, dont_care=data.dont_care)
            loss += terms["total"].item() * len(images)
        out += [d.cpu() for d in detect(raws, scales, conf_threshold, nms_iou)]
    return out, (loss / max(len(data.images), 1) if num_classes is not None else None)


def score_detections(
    model: Darknet, data: DetectionSet, nms_iou: float, with_loss: bool = False
) -> tuple[list[torch.Tensor], float | None]:
    """The detections a checkpoint is scored on, val and test alike: BatchNorm folded into the
    convolutions, in float32, every box above `SCORE_FLOOR` after NMS at `nms_iou`.

    Returns:
        Per frame (N, 6) in letterboxed pixels, best first, on the CPU; and with `with_loss`
        the mean loss per frame (else None).
    """
    classes = model_classes(model) if with_loss else None
    fused = fuse_batchnorm(model)
    return predict_detections(
        fused, data, scales_of(model), SCORE_FLOOR, nms_iou, num_classes=classes
    )


def detect_frames(
    model: Darknet,
    images: list[torch.Tensor],
    img_size: int | tuple[int, int],
    conf_threshold: float,
    nms_iou: float,
    device: torch.device | str = "cpu",
    fill: int = DARKNET_FILL,
) -> list[torch.Tensor]:
    """Detections of each (3, H, W) uint8 image, (N, 6) rows `x1, y1, x2, y2, score, class` in
    its own pixels (clipped to it), best first; `fill` is the letterbox's grey.

    A box that lies wholly in the letterbox padding is left out (`in_frame`): it is not a
    detection of anything in the image.
    """
    boxed = [letterbox(image, torch.zeros(0, 4), img_size, fill) for image in images]
    data = DetectionSet(
        torch.stack([b[0] for b in boxed]),
        [torch.zeros(0, 5)] * len(images),
        [str(i) for i in range(len(images))],
        [b[2] for b in boxed],
        [(image.shape[-1], image.shape[-2]) for image in images],
    )
    fused = fuse_batchnorm(model).to(device)
    detections, _ = predict_detections(
        fused, data.to(device), scales_of(model), conf_threshold, nms_iou
    )
    return [in_frame(data, i, found) for i, found in enumerate(detections)]


def in_frame(data: DetectionSet, index: int, found: torch.Tensor) -> torch.Tensor:
    """Detections of frame `index` in its own pixels, clipped to it; a box that lies wholly in
    the letterbox padding has no area once clipped and is left out."""
    found = data.to_frame(index, found)
    return found[(found[:, 2] > found[:, 0]) & (found[:, 3] > found[:, 1])]


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as (3, H, W) uint8."""
    with Image.open(path) as opened:
        return torch.from_numpy(np.array(opened.convert("RGB"))).permute(2, 0, 1).contiguous()


def detect_images(
    images: list[str],
    model_file: str | Path,
    out: str | Path,
    conf: float = 0.25,
    nms: float = 0.45,
    device: str = "auto",
) -> None:
    """`kitti-detect`: draw a detector's boxes on images, one PNG each, and list them in
    `out/detections.csv`.

    Raises:
        FileNotFoundError: for an image or folder that is not there.
        ValueError: for a threshold outside [0, 1] or a file that is not a detector.
    """
    import matplotlib.pyplot as plt

    from kitti_pipeline.detect.figures import detection_figure

    for name, value in (("--conf", conf), ("--nms", nms)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")
    paths = []
    for item in map(Path, images):
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such image or folder")
    model, info = load_detector(model_file)  # a bad file is named before any device notice
    device = resolve_device(device)
    model = model.to(device)
    classes = tuple(info["classes"])
    out = Path(out)
    rows = []
    for path in paths:
        image = read_image(path)
        size, fill = info["img_size"], info["letterbox_fill"]
        detections = detect_frames(model, [image], size, conf, nms, device, fill)[0]
        title = f"{path.name}: {Path(model_file).name}, epoch {info['epoch']}"
        figure = detection_figure(
            Image.open(path).convert("RGB"), [(title, detections.numpy())], classes
        )
        with atomic_path(out / f"{path.stem}.png") as tmp:
            figure.savefig(tmp, format="png", dpi=100)
        plt.close(figure)
        rows += [
            {
                "image": str(path),
                "class": classes[int(d[5])],
                "score": round(float(d[4]), 4),
                **{
                    k: round(float(v), 2)
                    for k, v in zip(("x1", "y1", "x2", "y2"), d[:4], strict=True)
                },
            }
            for d in detections
        ]
        print(f"{path}: {len(detections)} detections")
    write_csv(out / "detections.csv", rows, ["image", "class", "score", "x1", "y1", "x2", "y2"])
