"""The objects both pretraining stand-ins draw: ten classes that are not KITTI's.

Buses, trucks, traffic lights, stop signs, trees, houses, dogs, benches, umbrellas and boats,
each drawn with random proportions, size and position over a random outdoor background with
clutter, then blurred, downsampled and given sensor noise. Buses, trucks, houses and boats come in
the few colours their kind is painted in (`PALETTE`), as real ones do; the other kinds keep their
own colours (green trees, red stop signs) or take any (umbrellas). They share low-level structure
with cars, persons and cyclists (wheels, windows, poles, limbs, silhouettes) but none of their
classes or scenes. `imagenet` makes one-object images of them, `coco` scenes of several.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OBJECT_CLASSES = (
    "bus",
    "truck",
    "traffic_light",
    "stop_sign",
    "tree",
    "house",
    "dog",
    "bench",
    "umbrella",
    "boat",
)
# Width / height of each class's box, as a range.
ASPECT = {
    "bus": (1.8, 3.0),
    "truck": (1.4, 2.4),
    "traffic_light": (0.25, 0.4),
    "stop_sign": (0.35, 0.5),
    "tree": (0.5, 0.9),
    "house": (0.9, 1.5),
    "dog": (1.2, 1.8),
    "bench": (1.6, 2.6),
    "umbrella": (0.8, 1.2),
    "boat": (1.0, 1.8),
}

# The colours a kind is painted in, each drawn jittered by up to 25 per channel.
PALETTE = {
    "bus": ((230, 190, 40), (190, 40, 40), (225, 225, 225), (40, 80, 160)),
    "truck": ((230, 230, 230), (180, 40, 35), (90, 100, 120), (220, 120, 30)),
    "house": ((215, 200, 170), (160, 80, 60), (235, 235, 230), (130, 130, 135)),
    "boat": ((235, 235, 235), (170, 40, 40), (30, 45, 90)),
}


def background(rng, s: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """Sky, ground and clutter (blocks and lines of other colours) on an s x s canvas."""
    image = Image.new("RGB", (s, s), _colour(rng))
    draw = ImageDraw.Draw(image)
    horizon = rng.uniform(0.2, 0.8) * s
    draw.rectangle([0, 0, s, horizon], fill=_colour(rng, 90, 255))
    draw.rectangle([0, horizon, s, s], fill=_colour(rng, 30, 200))
    for _ in range(rng.integers(1, 6)):
        x, y = rng.uniform(0, s, 2)
        w, h = rng.uniform(s * 0.05, s * 0.4, 2)
        if rng.random() < 0.5:
            draw.rectangle([x, y, x + w, y + h], fill=_colour(rng))
        else:
            draw.line([(x, y), (x + w, y + h)], fill=_colour(rng), width=int(rng.integers(1, 5)))
    return image, draw


def object_shape(rng, name: str, low: float, high: float) -> tuple[float, float]:
    """Width and height of a `name` whose longer side is between `low` and `high`."""
    aspect = rng.uniform(*ASPECT[name])
    extent = rng.uniform(low, high)
    return (extent, extent / aspect) if aspect >= 1 else (extent * aspect, extent)


def finish(rng, image: Image.Image, size: int) -> np.ndarray:
    """Blur, downsample to `size` and add sensor noise."""
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.5)))
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels + rng.normal(0.0, rng.uniform(0.0, 8.0), pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _colour(rng, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _paint(rng, name: str) -> tuple[int, int, int]:
    """One of `name`'s `PALETTE` colours, jittered."""
    palette = PALETTE[name]
    base = palette[rng.integers(len(palette))]
    return tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in base)


def _wheels(draw, centres, r):
    for cx, cy in centres:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(20, 20, 20))
        draw.ellipse([cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2], fill=(160, 160, 160))


def _bus(draw, rng, x, y, w, h):
    draw.rounded_rectangle([x, y, x + w, y + h * 0.85], radius=h * 0.08, fill=_paint(rng, "bus"))
    glass = _colour(rng, 20, 110)
    for wx in np.arange(x + w * 0.05, x + w * 0.9, w * rng.uniform(0.1, 0.16)):
        draw.rectangle([wx, y + h * 0.15, wx + w * 0.07, y + h * 0.45], fill=glass)
    _wheels(draw, [(x + w * 0.18, y + h * 0.85), (x + w * 0.82, y + h * 0.85)], h * 0.14)


def _truck(draw, rng, x, y, w, h):
    draw.rectangle([x, y, x + w * 0.7, y + h * 0.8], fill=_paint(rng, "truck"))
    draw.rectangle([x + w * 0.72, y + h * 0.3, x + w, y + h * 0.8], fill=_paint(rng, "truck"))
    draw.rectangle(
        [x + w * 0.8, y + h * 0.36, x + w * 0.96, y + h * 0.55], fill=_colour(rng, 20, 110)
    )
    _wheels(
        draw,
        [(x + w * 0.15, y + h * 0.85), (x + w * 0.38, y + h * 0.85), (x + w * 0.85, y + h * 0.85)],
        h * 0.14,
    )


def _traffic_light(draw, rng, x, y, w, h):
    draw.rectangle([x + w * 0.4, y + h * 0.4, x + w * 0.6, y + h], fill=(60, 60, 60))
    draw.rounded_rectangle([x, y, x + w, y + h * 0.45], radius=w * 0.2, fill=(30, 30, 30))
    for k, colour in enumerate([(220, 40, 40), (230, 190, 30), (40, 200, 80)]):
        cy = y + h * (0.08 + 0.14 * k) + h * 0.03
        r = min(w * 0.32, h * 0.06)
        lit = colour if rng.random() < 0.5 else tuple(c // 3 for c in colour)
        draw.ellipse([x + w / 2 - r, cy - r, x + w / 2 + r, cy + r], fill=lit)


def _stop_sign(draw, rng, x, y, w, h):
    draw.rectangle([x + w * 0.45, y + w, x + w * 0.55, y + h], fill=(90, 90, 90))
    r = w / 2
    cx, cy = x + r, y + r
    points = [
        (
            cx + r * math.cos(math.pi / 8 + k * math.pi / 4),
            cy + r * math.sin(math.pi / 8 + k * math.pi / 4),
        )
        for k in range(8)
    ]
    draw.polygon(points, fill=(200 + int(rng.integers(0, 50)), 20, 30))
    draw.rectangle([cx - r * 0.6, cy - r * 0.12, cx + r * 0.6, cy + r * 0.12], fill=(240, 240, 240))


def _tree(draw, rng, x, y, w, h):
    draw.rectangle([x + w * 0.42, y + h * 0.55, x + w * 0.58, y + h], fill=_colour(rng, 50, 120))
    green = (int(rng.integers(20, 90)), int(rng.integers(90, 190)), int(rng.integers(20, 80)))
    if rng.random() < 0.5:
        draw.ellipse([x, y, x + w, y + h * 0.7], fill=green)
    else:
        draw.polygon([(x + w / 2, y), (x + w, y + h * 0.7), (x, y + h * 0.7)], fill=green)


def _house(draw, rng, x, y, w, h):
    draw.rectangle([x, y + h * 0.4, x + w, y + h], fill=_paint(rng, "house"))
    draw.polygon(
        [(x - w * 0.05, y + h * 0.42), (x + w / 2, y), (x + w * 1.05, y + h * 0.42)],
        fill=_paint(rng, "house"),
    )
    draw.rectangle([x + w * 0.42, y + h * 0.65, x + w * 0.58, y + h], fill=_paint(rng, "house"))
    for wx in (x + w * 0.12, x + w * 0.7):
        draw.rectangle([wx, y + h * 0.52, wx + w * 0.18, y + h * 0.68], fill=_colour(rng, 20, 110))


def _dog(draw, rng, x, y, w, h):
    fur = _colour(rng, 60, 230)
    for lx in (0.2, 0.3, 0.65, 0.75):
        draw.rectangle([x + w * lx, y + h * 0.55, x + w * (lx + 0.07), y + h], fill=fur)
    draw.ellipse([x + w * 0.12, y + h * 0.3, x + w * 0.85, y + h * 0.7], fill=fur)
    draw.ellipse([x + w * 0.72, y, x + w, y + h * 0.42], fill=fur)
    draw.line(
        [(x + w * 0.15, y + h * 0.45), (x, y + h * 0.2)], fill=fur, width=max(1, int(h * 0.06))
    )


def _bench(draw, rng, x, y, w, h):
    wood = _colour(rng, 80, 200)
    for k in range(3):
        top = y + h * (0.1 + 0.17 * k)
        draw.rectangle([x, top, x + w, top + h * 0.1], fill=wood)
    for lx in (0.08, 0.86):
        draw.rectangle([x + w * lx, y + h * 0.45, x + w * (lx + 0.06), y + h], fill=(40, 40, 40))


def _umbrella(draw, rng, x, y, w, h):
    draw.line(
        [(x + w / 2, y + h * 0.3), (x + w / 2, y + h)],
        fill=(40, 40, 40),
        width=max(1, int(w * 0.04)),
    )
    draw.pieslice([x, y, x + w, y + h * 0.7], 180, 360, fill=_colour(rng))
    draw.arc(
        [x + w / 2, y + h * 0.85, x + w * 0.62, y + h],
        0,
        180,
        fill=(40, 40, 40),
        width=max(1, int(w * 0.03)),
    )


def _boat(draw, rng, x, y, w, h):
    draw.polygon(
        [(x, y + h * 0.65), (x + w, y + h * 0.65), (x + w * 0.85, y + h), (x + w * 0.15, y + h)],
        fill=_paint(rng, "boat"),
    )
    draw.line(
        [(x + w * 0.5, y), (x + w * 0.5, y + h * 0.65)],
        fill=(60, 40, 30),
        width=max(1, int(w * 0.03)),
    )
    draw.polygon(
        [(x + w * 0.52, y + h * 0.05), (x + w * 0.52, y + h * 0.6), (x + w * 0.9, y + h * 0.6)],
        fill=_colour(rng, 150, 256),
    )


DRAW = {
    "bus": _bus,
    "truck": _truck,
    "traffic_light": _traffic_light,
    "stop_sign": _stop_sign,
    "tree": _tree,
    "house": _house,
    "dog": _dog,
    "bench": _bench,
    "umbrella": _umbrella,
    "boat": _boat,
}
