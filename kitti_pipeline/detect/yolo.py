"""YOLOv3's box decoding, loss and post-processing.

A [yolo] map (B, A*(5+C), H, W) holds, for anchor a at cell (i, j): tx, ty, tw, th, objectness
and C class logits. With stride s = input size / H and anchor (pw, ph) in input pixels:

    bx = (sigmoid(tx) + j) * s      by = (sigmoid(ty) + i) * s
    bw = pw * exp(tw)               bh = ph * exp(th)

Loss terms, as in the YOLOv3 paper, summed over the batch and divided by the batch size:

    xy     squared error between (sigmoid(tx), sigmoid(ty)) and the ground truth's offset in its
           cell, for the one anchor assigned to each ground truth (the best of all anchors by
           shape IoU, at the cell holding the box centre);
    wh     squared error between (tw, th) and log(w / pw, h / ph) for that anchor;
           with `box_loss="darknet"`, xy is instead the binary cross-entropy of (tx, ty) against
           the offset: its gradient on the logit is sigmoid(tx) - offset, the delta Darknet's
           `delta_yolo_box` applies to it (the study's Part III calls it binary cross-entropy);
           with `box_loss="giou"`, xy and wh are replaced by 1 - GIoU of the decoded box;
    obj    binary cross-entropy of the objectness logit against 1, for assigned anchors;
    noobj  binary cross-entropy against 0 for every other prediction, except those whose decoded
           box overlaps some ground truth by more than `ignore_iou` (by default each scale's
           own, the cfg's `ignore_thresh`): they are not punished
           for finding an object that another anchor answers for; nor are those lying more than
           `ignore_iou` of their area inside an ignored region (target rows of class -1, from
           KITTI's `label_2` files): a `DontCare` region, whose objects nobody labelled, or an
           object the devkit ignores for the classes learnt (a van, for cars);
    cls    binary cross-entropy of each class logit against the one-hot class, assigned anchors.

With `small_box_scale`, as Darknet's `delta_yolo_box` scales its deltas, each ground truth's
xy and wh (or giou) terms are weighted by 2 - w * h, its width and height as fractions of the
input: a box filling the input counts once, a small one up to twice, so small objects (most
KITTI cars) are not drowned by large ones.

Two ground truths whose centres fall in the same cell with the same best anchor share one
prediction: each adds its own xy, wh and cls terms, and the prediction's objectness counts once.
(Darknet writes each ground truth's deltas into the cell in label order, so there the last one
overwrites the others; summing keeps every box's gradient.)

Boxes are xyxy in input pixels (see `kitti_pipeline.data.boxes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, box_convert, generalized_box_iou_loss

BOX_LOSSES = ("mse", "darknet", "giou")


@dataclass(frozen=True)
class Scale:
    """One detection scale: its anchors (A, 2) in input pixels, its stride, and the IoU with a
    ground truth above which a prediction gets no no-object loss (its cfg's `ignore_thresh`)."""

    anchors: tuple[tuple[float, float], ...]
    stride: int
    ignore_iou: float = 0.5


def split_map(raw: torch.Tensor, num_anchors: int) -> torch.Tensor:
    """(B, A*(5+C), H, W) -> (B, A, H, W, 5+C)."""
    b, _, h, w = raw.shape
    return raw.view(b, num_anchors, -1, h, w).permute(0, 1, 3, 4, 2)


def decode(raw: torch.Tensor, scale: Scale) -> torch.Tensor:
    """Raw map -> (B, A, H, W, 4) boxes xyxy in input pixels."""
    p = split_map(raw, len(scale.anchors))
    _, _, h, w, _ = p.shape
    i, j = torch.meshgrid(
        torch.arange(h, device=raw.device), torch.arange(w, device=raw.device), indexing="ij"
    )
    anchors = torch.tensor(scale.anchors, dtype=p.dtype, device=raw.device).view(1, -1, 1, 1, 2)
    cx = (p[..., 0].sigmoid() + j) * scale.stride
    cy = (p[..., 1].sigmoid() + i) * scale.stride
    wh = p[..., 2:4].exp() * anchors
    return box_convert(torch.stack([cx, cy, wh[..., 0], wh[..., 1]], -1), "cxcywh", "xyxy")


def shape_iou(wh: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """IoU of boxes and anchors placed on a common centre: (N, 2), (M, 2) -> (N, M)."""
    inter = torch.min(wh[:, None], anchors[None]).prod(-1)
    return inter / (wh.prod(-1)[:, None] + anchors.prod(-1)[None] - inter)


def overlaps_any(
    boxes: torch.Tensor, others: torch.Tensor, real: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Whether each box overlaps one of its image's real `others` by an IoU above `threshold`.

    Args:
        boxes: (B, M, 4) boxes xyxy.
        others: (B, N, 4) boxes xyxy of the same images.
        real: (B, N) flags of the `others` that count.
        threshold: The IoU to exceed.

    Returns:
        (B, M) flags: torchvision's `box_iou(boxes[b], others[b]) > threshold` over real others.

    Worked coordinate by coordinate in (B, N, M) with M contiguous, in place and without a
    division: several times faster than broadcasting whole corners when M, every prediction of
    a map, is large. IoU > t is the same as inter > t (area_a + area_b - inter), that is
    (1 + t) inter - t area_b > t area_a; a box that is not real is made empty, so that it
    overlaps nothing.
    """
    a = boxes.transpose(1, 2)[:, :, None, :]  # (B, 4, 1, M)
    b = (others * real[..., None]).transpose(1, 2)[:, :, :, None]  # (B, 4, N, 1)
    width = torch.min(a[:, 2], b[:, 2]).sub_(torch.max(a[:, 0], b[:, 0])).clamp_(min=0)
    height = torch.min(a[:, 3], b[:, 3]).sub_(torch.max(a[:, 1], b[:, 1])).clamp_(min=0)
    inter = width.mul_(height)  # (B, N, M)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])  # (B, 1, M)
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # (B, N, 1)
    return (inter.mul_(1 + threshold).sub_(area_b * threshold) > area_a * threshold).any(1)


# What pads a frame's ground truths up to the batch's most: class 0, a 1 x 1 box at the origin,
# so that every log and IoU of a padding row stays finite (its terms are then weighted 0).
PADDING_ROW = (0.0, 0.0, 0.0, 1.0, 1.0)


def pad_targets(
    targets: list[torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame (N_i, 5) rows -> (B, N, 5), N the most in one frame, and (B, N) real-row flags."""
    n = max((len(t) for t in targets), default=0)
    rows = torch.nn.utils.rnn.pad_sequence(
        [t.to(device, torch.float32).reshape(-1, 5) for t in targets], batch_first=True
    )
    lengths = torch.tensor([len(t) for t in targets], device=device)
    real = torch.arange(n, device=device)[None] < lengths[:, None]
    return torch.where(real[..., None], rows, torch.tensor(PADDING_ROW, device=device)), real


def inside_any(
    boxes: torch.Tensor, regions: torch.Tensor, real: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Whether more than `threshold` of each box's area lies inside one of its image's real
    `regions`: (B, M, 4), (B, K, 4), (B, K) -> (B, M), without a division, as `overlaps_any`."""
    a = boxes.transpose(1, 2)[:, :, None, :]  # (B, 4, 1, M)
    b = (regions * real[..., None]).transpose(1, 2)[:, :, :, None]  # (B, 4, K, 1)
    width = torch.min(a[:, 2], b[:, 2]).sub_(torch.max(a[:, 0], b[:, 0])).clamp_(min=0)
    height = torch.min(a[:, 3], b[:, 3]).sub_(torch.max(a[:, 1], b[:, 1])).clamp_(min=0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])  # (B, 1, M)
    return (width.mul_(height) > area_a * threshold).any(1)


def yolo_loss(
    raws: list[torch.Tensor],
    scales: list[Scale],
    targets: list[torch.Tensor],
    num_classes: int,
    ignore_iou: float | None = None,
    box_loss: str = "mse",
    dont_care: bool = False,
    small_box_scale: bool = False,
) -> dict[str, torch.Tensor]:
    """The YOLOv3 loss over all scales, every ground truth of the batch at once.

    The targets are padded to (B, N, 5) and each ground truth's anchor, cell and offsets are
    computed as tensors; terms are sums weighted by which rows are real and belong to the scale,
    so the work does not grow with the number of ground truths and nothing waits for the device.

    Args:
        raws: One raw map per scale, (B, A*(5+C), H, W).
        scales: The anchors and stride of each map.
        targets: Per image, (N, 5) rows `class, x1, y1, x2, y2` in input pixels; a row of class
            -1 is an ignored region (`DontCare`, or a van for cars), not an object.
        num_classes: C.
        ignore_iou: Predictions overlapping a ground truth more than this get no noobj loss;
            None: each scale's `ignore_iou`.
        box_loss: `mse` (the paper's squared error), `darknet` or `giou`.
        dont_care: Whether `targets` may hold ignored regions whose predictions to spare (a set
            with `label_2` files: `DetectionSet.dont_care`). Known on the host, it saves the
            region test, as costly as the ground-truth one, where there are none; rows of
            class -1 never count as objects either way.
        small_box_scale: Weight each ground truth's box terms by 2 - w * h (Darknet's rule).

    Returns:
        The terms `xy`, `wh` (or `giou`), `obj`, `noobj`, `cls` and their sum `total`.
    """
    if box_loss not in BOX_LOSSES:
        raise ValueError(f"Invalid box_loss {box_loss!r}: expected one of {list(BOX_LOSSES)}")
    batch, device = raws[0].shape[0], raws[0].device
    padded, rows = pad_targets(targets, device)  # (B, N, 5), (B, N)
    regions = rows & (padded[..., 0] < 0)  # ignored regions, not objects
    real = rows & ~regions
    gt = torch.where(regions[..., None], torch.tensor(PADDING_ROW, device=device), padded)
    n = gt.shape[1]
    boxes = gt[..., 1:5]  # (B, N, 4)
    wh = boxes[..., 2:4] - boxes[..., 0:2]  # (B, N, 2)
    centre = (boxes[..., 0:2] + boxes[..., 2:4]) / 2
    all_anchors = torch.tensor([a for s in scales for a in s.anchors], device=device)
    best = shape_iou(wh.reshape(-1, 2), all_anchors).argmax(1).view(batch, n)  # (B, N)
    image = torch.arange(batch, device=device)[:, None].expand(batch, n)
    onehot = F.one_hot(gt[..., 0].long(), num_classes).float()  # (B, N, C)
    # The input's size in pixels: any map's cells times its stride.
    input_w = raws[0].shape[-1] * scales[0].stride
    input_h = raws[0].shape[-2] * scales[0].stride
    if small_box_scale:
        box_weight = 2 - wh[..., 0] * wh[..., 1] / (input_w * input_h)  # (B, N)
    else:
        box_weight = torch.ones_like(wh[..., 0])
    box_terms = ("giou",) if box_loss == "giou" else ("xy", "wh")
    terms = {name: torch.zeros((), device=device) for name in (*box_terms, "obj", "noobj", "cls")}

    first = 0  # index of the scale's first anchor in `all_anchors`
    for raw, scale in zip(raws, scales, strict=True):
        p = split_map(raw, len(scale.anchors)).float()  # (B, A, H, W, 5+C)
        decoded = decode(raw.float(), scale)  # (B, A, H, W, 4)
        _, na, h, w, _ = p.shape
        here = (real & (best >= first) & (best < first + na)).float()  # (B, N): this scale's
        a = (best - first).clamp(0, na - 1)
        j = (centre[..., 0] / scale.stride).long().clamp(0, w - 1)
        i = (centre[..., 1] / scale.stride).long().clamp(0, h - 1)
        cell = p[image, a, i, j]  # (B, N, 5+C): the prediction each ground truth is assigned
        if box_loss == "giou":
            giou = generalized_box_iou_loss(decoded[image, a, i, j], boxes, reduction="none")
            terms["giou"] = terms["giou"] + (giou * box_weight * here).sum()
        else:
            offset = torch.stack(
                [centre[..., 0] / scale.stride - j, centre[..., 1] / scale.stride - i], -1
            )
            if box_loss == "darknet":  # gradient t - sigmoid(tx) on the logit itself
                xy = F.binary_cross_entropy_with_logits(
                    cell[..., 0:2], offset, reduction="none"
                ).sum(-1)
            else:
                xy = ((cell[..., 0:2].sigmoid() - offset) ** 2).sum(-1)
            wh_error = ((cell[..., 2:4] - torch.log(wh / all_anchors[best])) ** 2).sum(-1)
            terms["xy"] = terms["xy"] + (xy * box_weight * here).sum()
            terms["wh"] = terms["wh"] + (wh_error * box_weight * here).sum()
        cls = F.binary_cross_entropy_with_logits(cell[..., 5:], onehot, reduction="none").sum(-1)
        terms["cls"] = terms["cls"] + (cls * here).sum()

        assigned = torch.zeros(p.shape[:4], device=device)
        assigned = assigned.index_put((image, a, i, j), here, accumulate=True) > 0  # (B, A, H, W)
        with torch.no_grad():  # a mask: no gradient flows through it
            flat = decoded.reshape(batch, -1, 4)  # (B, A*H*W, 4)
            threshold = scale.ignore_iou if ignore_iou is None else ignore_iou
            ignored = overlaps_any(flat, boxes, real, threshold)
            if dont_care:
                ignored |= inside_any(flat, padded[..., 1:5], regions, threshold)
            ignored = ignored.view(batch, na, h, w)
        # One pass for both objectness terms: against 1 where assigned, 0 elsewhere.
        target = assigned.float()
        bce = F.binary_cross_entropy_with_logits(p[..., 4], target, reduction="none")
        terms["obj"] = terms["obj"] + (bce * target).sum()
        terms["noobj"] = terms["noobj"] + (bce * (~assigned & ~ignored)).sum()
        first += na

    terms = {name: value / batch for name, value in terms.items()}
    terms["total"] = sum(terms.values())
    return terms


@torch.no_grad()
def detect(
    raws: list[torch.Tensor],
    scales: list[Scale],
    conf_threshold: float,
    nms_iou: float,
    max_detections: int = 300,
) -> list[torch.Tensor]:
    """Detections per image: (N, 6) rows `x1, y1, x2, y2, score, class`, best first.

    The score is objectness times the class probability; boxes under `conf_threshold` are dropped
    and the rest go through torchvision's `batched_nms` class by class.
    """
    boxes, scores = [], []
    for raw, scale in zip(raws, scales, strict=True):
        p = split_map(raw, len(scale.anchors)).float()
        b = p.shape[0]
        boxes.append(decode(raw.float(), scale).reshape(b, -1, 4))
        scores.append(
            (p[..., 4:5].sigmoid() * p[..., 5:].sigmoid()).reshape(b, -1, p.shape[-1] - 5)
        )
    boxes, scores = torch.cat(boxes, 1), torch.cat(scores, 1)
    out = []
    for image_boxes, image_scores in zip(boxes, scores, strict=True):
        idx, cls = torch.nonzero(image_scores > conf_threshold, as_tuple=True)
        kept_boxes, kept_scores = image_boxes[idx], image_scores[idx, cls]
        keep = batched_nms(kept_boxes, kept_scores, cls, nms_iou)[:max_detections]
        out.append(
            torch.cat([kept_boxes[keep], kept_scores[keep, None], cls[keep, None].float()], 1)
        )
    return out


def scales_of(model) -> list[Scale]:
    """The detection scales of a Darknet model, coarsest first as its maps come out."""
    from kitti_pipeline.detect.darknet import YoloLayer

    return [
        Scale(tuple(layer.anchors), layer.stride, layer.ignore_thresh)
        for layer in model.layers
        if isinstance(layer, YoloLayer)
    ]
