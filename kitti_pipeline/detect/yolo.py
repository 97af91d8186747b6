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
           with `box_loss="giou"`, xy and wh are replaced by 1 - GIoU of the decoded box;
    obj    binary cross-entropy of the objectness logit against 1, for assigned anchors;
    noobj  binary cross-entropy against 0 for every other prediction, except those whose decoded
           box overlaps some ground truth by more than `ignore_iou` (0.5): they are not punished
           for finding an object that another anchor answers for;
    cls    binary cross-entropy of each class logit against the one-hot class, assigned anchors.

Boxes are xyxy in input pixels (see `kitti_pipeline.data.boxes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, box_convert, box_iou, generalized_box_iou_loss


@dataclass(frozen=True)
class Scale:
    """One detection scale: its anchors (A, 2) in input pixels and its stride."""

    anchors: tuple[tuple[float, float], ...]
    stride: int


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


def yolo_loss(
    raws: list[torch.Tensor],
    scales: list[Scale],
    targets: list[torch.Tensor],
    num_classes: int,
    ignore_iou: float = 0.5,
    box_loss: str = "mse",
) -> dict[str, torch.Tensor]:
    """The YOLOv3 loss over all scales.

    Args:
        raws: One raw map per scale, (B, A*(5+C), H, W).
        scales: The anchors and stride of each map.
        targets: Per image, (N, 5) rows `class, x1, y1, x2, y2` in input pixels.
        num_classes: C.
        ignore_iou: Predictions overlapping a ground truth more than this get no noobj loss.
        box_loss: `mse` (the paper's squared error) or `giou`.

    Returns:
        The terms `xy`, `wh` (or `giou`), `obj`, `noobj`, `cls` and their sum `total`.
    """
    if box_loss not in ("mse", "giou"):
        raise ValueError(f"Invalid box_loss {box_loss!r}: expected 'mse' or 'giou'")
    batch = raws[0].shape[0]
    device = raws[0].device
    all_anchors = torch.tensor([a for s in scales for a in s.anchors], device=device)
    first = [sum(len(s.anchors) for s in scales[:k]) for k in range(len(scales))]
    box_terms = ("giou",) if box_loss == "giou" else ("xy", "wh")
    terms = {name: torch.zeros((), device=device) for name in (*box_terms, "obj", "noobj", "cls")}

    for k, (raw, scale) in enumerate(zip(raws, scales, strict=True)):
        p = split_map(raw, len(scale.anchors)).float()  # (B, A, H, W, 5+C)
        boxes = decode(raw.float(), scale)  # (B, A, H, W, 4)
        _, na, h, w, _ = p.shape
        assigned = torch.zeros(p.shape[:4], dtype=torch.bool, device=device)
        ignored = torch.zeros_like(assigned)
        for b, t in enumerate(targets):
            if len(t) == 0:
                continue
            gt = t[:, 1:5].float()
            ignored[b] = (box_iou(boxes[b].reshape(-1, 4), gt).amax(1) > ignore_iou).view(na, h, w)
            wh = gt[:, 2:4] - gt[:, 0:2]
            best = shape_iou(wh, all_anchors).argmax(1)
            for n in torch.nonzero((best >= first[k]) & (best < first[k] + na)).flatten():
                a = int(best[n]) - first[k]
                cx, cy = (gt[n, 0:2] + gt[n, 2:4]) / 2
                j = min(int(cx / scale.stride), w - 1)
                i = min(int(cy / scale.stride), h - 1)
                assigned[b, a, i, j] = True
                cell = p[b, a, i, j]
                offset = torch.stack([cx / scale.stride - j, cy / scale.stride - i])
                anchor = all_anchors[best[n]].float()
                if box_loss == "giou":
                    terms["giou"] = terms["giou"] + generalized_box_iou_loss(
                        boxes[b, a, i, j], gt[n]
                    )
                else:
                    terms["xy"] = terms["xy"] + ((cell[0:2].sigmoid() - offset) ** 2).sum()
                    terms["wh"] = terms["wh"] + ((cell[2:4] - torch.log(wh[n] / anchor)) ** 2).sum()
                onehot = F.one_hot(t[n, 0].long(), num_classes).float()
                terms["cls"] = terms["cls"] + F.binary_cross_entropy_with_logits(
                    cell[5:], onehot, reduction="sum"
                )
        obj = p[..., 4]
        terms["obj"] = terms["obj"] + F.binary_cross_entropy_with_logits(
            obj[assigned], torch.ones_like(obj[assigned]), reduction="sum"
        )
        free = ~assigned & ~ignored
        terms["noobj"] = terms["noobj"] + F.binary_cross_entropy_with_logits(
            obj[free], torch.zeros_like(obj[free]), reduction="sum"
        )

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
        Scale(tuple(layer.anchors), layer.stride)
        for layer in model.layers
        if isinstance(layer, YoloLayer)
    ]
