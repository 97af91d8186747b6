"""Box math, in one convention.

Boxes are `(x1, y1, x2, y2)` in pixels, continuous coordinates: the frame spans `[0, W] x [0, H]`,
a box's width is `x2 - x1` with no `+1`. Normalised labels are `(cx, cy, w, h)` as fractions of the
frame, the YOLO convention used by the study's labels.
"""

from __future__ import annotations

Box = tuple[float, float, float, float]


def denormalise(cx: float, cy: float, w: float, h: float, width: int, height: int) -> Box:
    """Normalised centre/size to pixel corners.

    x1 = W * (cx - w/2), y1 = H * (cy - h/2), x2 = W * (cx + w/2), y2 = H * (cy + h/2).

    Args:
        cx, cy, w, h: The box centre and size as fractions of the frame.
        width, height: The frame size in pixels.

    Returns:
        The box as pixel corners `(x1, y1, x2, y2)`, not clipped.
    """
    return (
        width * (cx - w / 2),
        height * (cy - h / 2),
        width * (cx + w / 2),
        height * (cy + h / 2),
    )


def normalise(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    """Pixel corners to normalised `(cx, cy, w, h)`; the inverse of `denormalise`."""
    x1, y1, x2, y2 = box
    return (
        (x1 + x2) / 2 / width,
        (y1 + y2) / 2 / height,
        (x2 - x1) / width,
        (y2 - y1) / height,
    )


def clip(box: Box, width: int, height: int) -> Box:
    """Clip a pixel box to the frame `[0, width] x [0, height]`."""
    x1, y1, x2, y2 = box
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )


def box_size(box: Box) -> tuple[float, float]:
    """Width and height of a pixel box (zero when it is empty)."""
    x1, y1, x2, y2 = box
    return max(x2 - x1, 0.0), max(y2 - y1, 0.0)


def box_area(box: Box) -> float:
    w, h = box_size(box)
    return w * h


def intersection_area(a: Box, b: Box) -> float:
    """Area of the overlap of two pixel boxes."""
    return box_area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
