"""The YOLOv3 loss as a loop over images and ground truths: the slow reference that
`kitti_pipeline.detect.yolo.yolo_loss` must equal, and the baseline of bench/yolo_loss_speed.py.

Same terms and rules: each ground truth adds its box and class terms at its assigned anchor,
two ground truths in one cell and anchor both add theirs, and objectness counts that prediction
once.

It shares no code with what it checks: the map layout, the box decoding and the anchor choice
are written out here again, cell by cell where the loss itself works on whole maps.
"""

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, generalized_box_iou_loss


def cell_predictions(raw: torch.Tensor, num_anchors: int) -> torch.Tensor:
    """(B, A*(5+C), H, W) -> (B, A, H, W, 5+C): channel a*(5+C)+f of the map is field f of
    anchor a, as Darknet lays out its [yolo] input."""
    b, channels, h, w = raw.shape
    fields = channels // num_anchors
    out = torch.empty(b, num_anchors, h, w, fields, dtype=raw.dtype, device=raw.device)
    for a in range(num_anchors):
        for f in range(fields):
            out[:, a, :, :, f] = raw[:, a * fields + f]
    return out


def cell_boxes(p: torch.Tensor, anchors, stride: int) -> torch.Tensor:
    """(B, A, H, W, 5+C) predictions -> (B, A, H, W, 4) xyxy in input pixels: centre at
    (sigmoid(tx) + column, sigmoid(ty) + row) * stride, size exp(tw, th) * anchor."""
    _, na, h, w, _ = p.shape
    columns = torch.arange(w, dtype=p.dtype, device=p.device).view(1, 1, 1, w)
    rows = torch.arange(h, dtype=p.dtype, device=p.device).view(1, 1, h, 1)
    aw = torch.tensor([a[0] for a in anchors], dtype=p.dtype, device=p.device).view(1, na, 1, 1)
    ah = torch.tensor([a[1] for a in anchors], dtype=p.dtype, device=p.device).view(1, na, 1, 1)
    cx = (p[..., 0].sigmoid() + columns) * stride
    cy = (p[..., 1].sigmoid() + rows) * stride
    bw, bh = p[..., 2].exp() * aw, p[..., 3].exp() * ah
    return torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)


def best_anchor(width: float, height: float, anchors: list) -> int:
    """The anchor whose shape, centred on the box's, overlaps it most (the first of equals)."""
    overlaps = []
    for aw, ah in anchors:
        inter = min(width, aw) * min(height, ah)
        overlaps.append(inter / (width * height + aw * ah - inter))
    return max(range(len(anchors)), key=lambda k: (overlaps[k], -k))


def yolo_loss_loop(
    raws: list[torch.Tensor],
    scales: list,
    targets: list[torch.Tensor],
    num_classes: int,
    ignore_iou: float = 0.5,
    box_loss: str = "mse",
    dont_care: bool = False,
) -> dict[str, torch.Tensor]:
    """The YOLOv3 loss over all scales (targets without DontCare rows: `dont_care` False).

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
    if dont_care:
        raise ValueError("the reference loop knows no DontCare regions")
    if box_loss not in ("mse", "giou"):
        raise ValueError(f"Invalid box_loss {box_loss!r}: expected 'mse' or 'giou'")
    batch = raws[0].shape[0]
    device = raws[0].device
    all_anchors = torch.tensor([a for s in scales for a in s.anchors], device=device)
    first = [sum(len(s.anchors) for s in scales[:k]) for k in range(len(scales))]
    box_terms = ("giou",) if box_loss == "giou" else ("xy", "wh")
    terms = {name: torch.zeros((), device=device) for name in (*box_terms, "obj", "noobj", "cls")}

    for k, (raw, scale) in enumerate(zip(raws, scales, strict=True)):
        p = cell_predictions(raw.float(), len(scale.anchors))  # (B, A, H, W, 5+C)
        boxes = cell_boxes(p, scale.anchors, scale.stride)  # (B, A, H, W, 4)
        _, na, h, w, _ = p.shape
        assigned = torch.zeros(p.shape[:4], dtype=torch.bool, device=device)
        ignored = torch.zeros_like(assigned)
        for b, t in enumerate(targets):
            if len(t) == 0:
                continue
            gt = t[:, 1:5].float()
            ignored[b] = (box_iou(boxes[b].reshape(-1, 4), gt).amax(1) > ignore_iou).view(na, h, w)
            wh = gt[:, 2:4] - gt[:, 0:2]
            best = torch.tensor(
                [best_anchor(float(x), float(y), all_anchors.tolist()) for x, y in wh]
            )
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
