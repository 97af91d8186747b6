"""A KITTI-like street scene generator: the offline stand-in for the KITTI subset.

Frames follow KITTI's camera: a 1242x375 image from a camera 1.65 m above a flat road with a
focal length of about 721 px. Each object stands on the road at a distance `z`, so its bottom edge
sits `f * 1.65 / z` pixels below the horizon and its height is `f * height_m / z` pixels: far
objects are small and high, near ones large and low, and near ones hide far ones. Objects near
the sides run off the frame and are truncated, as in KITTI. Labels are the visible (clipped)
boxes, written both in the study's YOLO format and in KITTI's `label_2` format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from kitti_pipeline.core.params import SynthesizeParams
from kitti_pipeline.data.boxes import Box, box_area, clip, normalise
from kitti_pipeline.data.labels import KittiObject, format_kitti_line, format_yolo_line

CAMERA_HEIGHT_M = 1.65
KITTI_FOCAL_PX = 721.5
KITTI_WIDTH_PX = 1242
KITTI_TYPE = {"Car": "Car", "Person": "Pedestrian", "Cyclist": "Cyclist"}

# Objects hidden or cut off beyond these fractions are not placed at all: every drawn object is
# labelled, and every label shows enough of its object to be learnable.
MIN_VISIBLE = 0.25
MAX_TRUNCATED = 0.6
MIN_HEIGHT_PX = 8

CAR_COLOURS = [
    (235, 235, 235),
    (170, 172, 178),
    (40, 40, 45),
    (150, 20, 25),
    (25, 50, 120),
    (95, 98, 105),
    (30, 70, 45),
    (210, 180, 40),
    (120, 80, 50),
    (200, 200, 190),
]


@dataclass(frozen=True)
class SceneObject:
    """An object placed in a synthetic frame."""

    class_name: str
    box: Box  # full extent in pixels, possibly beyond the frame
    visible_box: Box  # clipped to the frame: the label
    truncated: float
    occluded: int
    height_m: float
    width_m: float
    length_m: float
    x_m: float
    z_m: float
    rotation_y: float

    def to_kitti(self) -> KittiObject:
        alpha = self.rotation_y - math.atan2(self.x_m, self.z_m)
        alpha = (alpha + math.pi) % (2 * math.pi) - math.pi
        return KittiObject(
            type=KITTI_TYPE[self.class_name],
            truncated=self.truncated,
            occluded=self.occluded,
            alpha=alpha,
            box=self.visible_box,
            dimensions=(self.height_m, self.width_m, self.length_m),
            location=(self.x_m, CAMERA_HEIGHT_M, self.z_m),
            rotation_y=self.rotation_y,
            line=0,
        )


def render_frame(
    rng: np.random.Generator,
    width: int,
    height: int,
    objects_per_frame: float,
    class_mix: dict[str, float],
) -> tuple[Image.Image, list[SceneObject]]:
    """Draw one street scene and return it with its objects, far to near.

    Args:
        rng: The only source of randomness, so a seed fixes the frame.
        width, height: Frame size in pixels (KITTI: 1242x375).
        objects_per_frame: Mean number of objects placed (Poisson, at least one tried).
        class_mix: Class name -> relative frequency.

    Returns:
        The RGB frame and the labelled objects.
    """
    focal = KITTI_FOCAL_PX * width / KITTI_WIDTH_PX
    horizon = height * rng.uniform(0.40, 0.50)
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    _draw_background(draw, rng, width, height, horizon)

    names = list(class_mix)
    weights = np.array([class_mix[n] for n in names], dtype=float)
    count = max(1, int(rng.poisson(objects_per_frame)))
    candidates = [
        _place(rng, names[rng.choice(len(names), p=weights / weights.sum())], width, horizon, focal)
        for _ in range(count)
    ]
    objects = _visible_objects(candidates, width, height)
    for obj in sorted(objects, key=lambda o: -o.z_m):
        _DRAW[obj.class_name](draw, rng, obj)

    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.2))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.8, 1.1))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    # Sensor noise: small, far objects lose their detail, as in real frames.
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels + rng.normal(0.0, rng.uniform(2.0, 7.0), pixels.shape).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image, sorted(objects, key=lambda o: -o.z_m)


def synthetic_frame(
    cfg: SynthesizeParams, classes: tuple[str, ...], index: int
) -> tuple[Image.Image, list[str], list[str]]:
    """Frame `index` of the demo dataset, with its label lines.

    Each frame has its own generator, seeded by (`cfg.seed`, `index`), so frame i is the same
    whatever the number of frames.

    Returns:
        The image, its YOLO label lines (class ids from `classes`) and its KITTI `label_2` lines.
    """
    rng = np.random.default_rng([cfg.seed, index])
    image, objects = render_frame(rng, cfg.width, cfg.height, cfg.objects_per_frame, cfg.class_mix)
    yolo = [
        format_yolo_line(
            classes.index(o.class_name), *normalise(o.visible_box, cfg.width, cfg.height)
        )
        for o in objects
    ]
    return image, yolo, [format_kitti_line(o.to_kitti()) for o in objects]


def write_synthetic_frame(
    out: Path, cfg: SynthesizeParams, classes: tuple[str, ...], index: int
) -> None:
    """Write frame `index` into the dataset folder `out`: `images/NNNNNN.png`,
    `labels/NNNNNN.txt` and, with `cfg.kitti_labels`, `label_2/NNNNNN.txt` (the folders exist).

    A frame depends on its index alone, so frames can be written in any order, by any process.
    """
    image, yolo, kitti = synthetic_frame(cfg, classes, index)
    # zlib level 1: a noisy frame compresses 2.5x faster than at PIL's default 6, for files 13%
    # larger (bench/README.md, "Drawing the generated frames").
    image.save(out / "images" / f"{index:06d}.png", compress_level=1)
    _write_lines(out / "labels" / f"{index:06d}.txt", yolo)
    if cfg.kitti_labels:
        _write_lines(out / "label_2" / f"{index:06d}.txt", kitti)


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def _place(rng, name: str, width: int, horizon: float, focal: float) -> dict:
    """Sample an object's size, distance, lateral position and heading in metres."""
    if name == "Car":
        h, w, l = rng.uniform(1.35, 1.75), rng.uniform(1.55, 1.9), rng.uniform(3.4, 4.9)  # noqa: E741
        parked = rng.random() < 0.35
        x = rng.choice([-1, 1]) * rng.uniform(4.5, 8.0) if parked else rng.uniform(-6.0, 6.0)
        ry = rng.choice([0.0, math.pi]) + rng.normal(0, 0.15)
        if rng.random() < 0.25:  # crossing or turning: a side view
            ry = rng.choice([-1, 1]) * math.pi / 2 + rng.normal(0, 0.3)
    elif name == "Person":
        h, w, l = rng.uniform(1.5, 1.95), rng.uniform(0.45, 0.7), rng.uniform(0.3, 0.5)  # noqa: E741
        x = rng.choice([-1, 1]) * rng.uniform(3.0, 9.0)
        ry = rng.uniform(-math.pi, math.pi)
    else:
        h, w, l = rng.uniform(1.55, 1.85), rng.uniform(0.5, 0.7), rng.uniform(1.6, 1.85)  # noqa: E741
        x = rng.choice([-1, 1]) * rng.uniform(2.0, 6.0)
        ry = rng.choice([0.0, math.pi, math.pi / 2, -math.pi / 2]) + rng.normal(0, 0.3)
    z_max = focal * h / MIN_HEIGHT_PX
    z = float(np.exp(rng.uniform(math.log(5.0), math.log(min(z_max, 70.0)))))
    seen_width = abs(l * math.sin(ry)) + abs(w * math.cos(ry))
    bottom = horizon + focal * CAMERA_HEIGHT_M / z
    cx = width / 2 + focal * x / z
    box = (
        cx - focal * seen_width / z / 2,
        bottom - focal * h / z,
        cx + focal * seen_width / z / 2,
        bottom,
    )
    return dict(
        class_name=name,
        box=box,
        height_m=h,
        width_m=w,
        length_m=l,
        x_m=x,
        z_m=z,
        rotation_y=(ry + math.pi) % (2 * math.pi) - math.pi,
    )


def _visible_objects(candidates: list[dict], width: int, height: int) -> list[SceneObject]:
    """Keep objects visible enough, near to far, with KITTI truncation and occlusion levels."""
    cover = np.zeros((height, width), dtype=bool)  # pixels hidden by nearer kept objects
    kept = []
    for c in sorted(candidates, key=lambda c: c["z_m"]):
        visible = clip(c["box"], width, height)
        area = box_area(visible)
        truncated = 1.0 - area / box_area(c["box"])
        if area <= 0 or truncated > MAX_TRUNCATED or visible[3] - visible[1] < MIN_HEIGHT_PX:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in visible)
        region = cover[y1:y2, x1:x2]
        shown = 1.0 - region.mean() if region.size else 0.0
        if shown < MIN_VISIBLE:
            continue
        region[...] = True
        occluded = 0 if shown > 0.9 else 1 if shown > 0.6 else 2
        kept.append(
            SceneObject(visible_box=visible, truncated=round(truncated, 2), occluded=occluded, **c)
        )
    return kept


def _jitter(rng, colour, amount=20):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _draw_background(draw: ImageDraw.ImageDraw, rng, width: int, height: int, horizon: float):
    top = np.array(_jitter(rng, (110, 150, 205), 30))
    bottom = np.array(_jitter(rng, (200, 215, 230), 20))
    for y in range(int(horizon) + 1):
        t = y / max(horizon, 1)
        draw.line([(0, y), (width, y)], fill=tuple(int(v) for v in top * (1 - t) + bottom * t))
    # Buildings and trees along both sides of the street.
    x = -rng.uniform(0, 80)
    while x < width:
        w = rng.uniform(60, 260)
        if abs(x + w / 2 - width / 2) > width * 0.12:
            h = rng.uniform(0.2, 0.95) * horizon
            colour = _jitter(
                rng,
                [
                    (180, 170, 150),
                    (140, 130, 120),
                    (200, 190, 175),
                    (120, 110, 105),
                    (165, 120, 95),
                ][rng.integers(5)],
                15,
            )
            draw.rectangle([x, horizon - h, x + w, horizon + 4], fill=colour)
            window = _jitter(rng, (70, 80, 95), 15)
            for wy in np.arange(horizon - h + 8, horizon - 10, rng.uniform(14, 24)):
                for wx in np.arange(x + 6, x + w - 10, rng.uniform(14, 26)):
                    draw.rectangle([wx, wy, wx + 7, wy + 8], fill=window)
            if rng.random() < 0.4:
                tx, th = x + rng.uniform(0, w), rng.uniform(0.3, 0.7) * horizon
                draw.rectangle([tx - 3, horizon - th * 0.4, tx + 3, horizon + 6], fill=(70, 50, 35))
                draw.ellipse(
                    [tx - th * 0.35, horizon - th, tx + th * 0.35, horizon - th * 0.3],
                    fill=_jitter(rng, (60, 110, 50), 25),
                )
        x += w + rng.uniform(0, 40)
    # Road and sidewalks converging on the vanishing point.
    vx = width / 2 + rng.uniform(-60, 60)
    draw.rectangle([0, horizon, width, height], fill=_jitter(rng, (150, 150, 145), 15))
    road = _jitter(rng, (95, 95, 98), 15)
    draw.polygon(
        [(vx - 8, horizon), (vx + 8, horizon), (width * 1.15, height), (-width * 0.15, height)],
        fill=road,
    )
    for side in (-1, 1):
        start = vx + side * 3
        for i in range(12):
            t0, t1 = (i / 12) ** 2, ((i + 0.5) / 12) ** 2
            ya, yb = horizon + t0 * (height - horizon), horizon + t1 * (height - horizon)
            xa, xb = start + side * t0 * width * 0.35, start + side * t1 * width * 0.35
            draw.line([(xa, ya), (xb, yb)], fill=(225, 225, 215), width=max(1, int(1 + 5 * t1)))
    # Poles and signs: thin upright shapes that are not objects of any class.
    for _ in range(rng.integers(0, 4)):
        px, scale = rng.uniform(0, width), rng.uniform(0.3, 1.0)
        base = horizon + scale * (height - horizon) * 0.5
        draw.rectangle([px, base - 160 * scale, px + 4 * scale + 1, base], fill=(60, 60, 62))
        if rng.random() < 0.5:
            draw.ellipse(
                [px - 10 * scale, base - 175 * scale, px + 14 * scale, base - 150 * scale],
                fill=_jitter(rng, (200, 40, 40), 30),
            )


def _draw_car(draw: ImageDraw.ImageDraw, rng, obj: SceneObject):
    x1, y1, x2, y2 = obj.box
    w, h = x2 - x1, y2 - y1
    body = _jitter(rng, CAR_COLOURS[rng.integers(len(CAR_COLOURS))], 12)
    glass = _jitter(rng, (45, 60, 80), 15)
    side_view = abs(math.sin(obj.rotation_y)) > 0.6
    draw.ellipse([x1 - w * 0.05, y2 - h * 0.12, x2 + w * 0.05, y2 + h * 0.06], fill=(35, 35, 35))
    if side_view:
        draw.rounded_rectangle([x1, y1 + h * 0.38, x2, y2 - h * 0.15], radius=h * 0.12, fill=body)
        draw.polygon(
            [
                (x1 + w * 0.22, y1 + h * 0.4),
                (x1 + w * 0.32, y1),
                (x1 + w * 0.72, y1),
                (x1 + w * 0.84, y1 + h * 0.4),
            ],
            fill=body,
        )
        draw.polygon(
            [
                (x1 + w * 0.27, y1 + h * 0.38),
                (x1 + w * 0.35, y1 + h * 0.07),
                (x1 + w * 0.7, y1 + h * 0.07),
                (x1 + w * 0.79, y1 + h * 0.38),
            ],
            fill=glass,
        )
        for cx in (x1 + w * 0.2, x1 + w * 0.8):
            r = h * 0.2
            draw.ellipse([cx - r, y2 - 2 * r, cx + r, y2], fill=(20, 20, 20))
            draw.ellipse(
                [cx - r * 0.5, y2 - 1.5 * r, cx + r * 0.5, y2 - 0.5 * r], fill=(150, 150, 150)
            )
    else:
        draw.rectangle([x1 + w * 0.04, y2 - h * 0.2, x1 + w * 0.2, y2], fill=(20, 20, 20))
        draw.rectangle([x2 - w * 0.2, y2 - h * 0.2, x2 - w * 0.04, y2], fill=(20, 20, 20))
        draw.rounded_rectangle([x1, y1 + h * 0.42, x2, y2 - h * 0.1], radius=h * 0.08, fill=body)
        draw.polygon(
            [
                (x1 + w * 0.1, y1 + h * 0.44),
                (x1 + w * 0.2, y1),
                (x2 - w * 0.2, y1),
                (x2 - w * 0.1, y1 + h * 0.44),
            ],
            fill=body,
        )
        draw.polygon(
            [
                (x1 + w * 0.16, y1 + h * 0.42),
                (x1 + w * 0.24, y1 + h * 0.08),
                (x2 - w * 0.24, y1 + h * 0.08),
                (x2 - w * 0.16, y1 + h * 0.42),
            ],
            fill=glass,
        )
        light = (200, 30, 30) if math.cos(obj.rotation_y) > 0 else (235, 235, 200)
        for lx in (x1 + w * 0.03, x2 - w * 0.17):
            draw.rectangle([lx, y1 + h * 0.5, lx + w * 0.14, y1 + h * 0.62], fill=light)
        draw.rectangle(
            [x1 + w * 0.35, y1 + h * 0.68, x2 - w * 0.35, y1 + h * 0.78], fill=(230, 230, 230)
        )


def _draw_person(draw: ImageDraw.ImageDraw, rng, obj: SceneObject):
    x1, y1, x2, y2 = obj.box
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    skin = _jitter(rng, [(230, 190, 160), (190, 140, 100), (120, 80, 55)][rng.integers(3)], 10)
    shirt = tuple(int(v) for v in rng.integers(20, 240, 3))
    trousers = _jitter(
        rng, [(40, 40, 60), (30, 50, 110), (70, 70, 70), (110, 90, 60)][rng.integers(4)]
    )
    stride = rng.uniform(0.0, 0.25) * w
    draw.polygon(
        [
            (cx - w * 0.3, y1 + h * 0.52),
            (cx - w * 0.25 - stride, y2),
            (cx - w * 0.05 - stride, y2),
            (cx, y1 + h * 0.6),
        ],
        fill=trousers,
    )
    draw.polygon(
        [
            (cx, y1 + h * 0.6),
            (cx + w * 0.05 + stride, y2),
            (cx + w * 0.25 + stride, y2),
            (cx + w * 0.3, y1 + h * 0.52),
        ],
        fill=trousers,
    )
    draw.rounded_rectangle(
        [cx - w * 0.38, y1 + h * 0.16, cx + w * 0.38, y1 + h * 0.56], radius=w * 0.15, fill=shirt
    )
    draw.rectangle([x1, y1 + h * 0.18, x1 + w * 0.16, y1 + h * 0.5], fill=shirt)
    draw.rectangle([x2 - w * 0.16, y1 + h * 0.18, x2, y1 + h * 0.5], fill=shirt)
    draw.ellipse([cx - w * 0.2, y1, cx + w * 0.2, y1 + h * 0.16], fill=skin)
    if rng.random() < 0.4:
        draw.chord(
            [cx - w * 0.21, y1 - h * 0.01, cx + w * 0.21, y1 + h * 0.1],
            180,
            360,
            fill=_jitter(rng, (40, 30, 20), 20),
        )


def _draw_cyclist(draw: ImageDraw.ImageDraw, rng, obj: SceneObject):
    x1, y1, x2, y2 = obj.box
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    frame = tuple(int(v) for v in rng.integers(20, 240, 3))
    tyre = max(1, int(h * 0.03))
    shirt = tuple(int(v) for v in rng.integers(20, 240, 3))
    skin = _jitter(rng, (200, 160, 125), 30)
    if abs(math.sin(obj.rotation_y)) > 0.6:  # side view: two wheels and a frame
        r = min(h * 0.2, w * 0.24)
        back, front = (x1 + r, y2 - r), (x2 - r, y2 - r)
        for wx, wy in (back, front):
            draw.ellipse([wx - r, wy - r, wx + r, wy + r], outline=(25, 25, 25), width=tyre)
        seat = (cx - w * 0.08, y2 - h * 0.45)
        bar = (front[0] - r * 0.3, y2 - h * 0.5)
        draw.line([back, seat, bar, front], fill=frame, width=tyre)
        draw.line([back, (cx, y2 - r), bar], fill=frame, width=tyre)
        draw.line([seat, (cx, y2 - r)], fill=(30, 30, 50), width=max(1, int(w * 0.06)))
        draw.polygon(
            [
                seat,
                (seat[0] + w * 0.12, seat[1]),
                (bar[0], y1 + h * 0.22),
                (cx - w * 0.05, y1 + h * 0.14),
            ],
            fill=shirt,
        )
        draw.ellipse([cx - h * 0.07, y1, cx + h * 0.07, y1 + h * 0.14], fill=skin)
    else:  # from behind or ahead: one thin upright wheel under the rider
        draw.rounded_rectangle(
            [cx - w * 0.1, y2 - h * 0.42, cx + w * 0.1, y2], radius=w * 0.08, fill=(25, 25, 25)
        )
        draw.line([(x1, y1 + h * 0.35), (x2, y1 + h * 0.35)], fill=frame, width=tyre + 1)
        draw.rectangle(
            [cx - w * 0.28, y2 - h * 0.55, cx - w * 0.12, y2 - h * 0.2], fill=(30, 30, 50)
        )
        draw.rectangle(
            [cx + w * 0.12, y2 - h * 0.55, cx + w * 0.28, y2 - h * 0.2], fill=(30, 30, 50)
        )
        draw.rounded_rectangle(
            [cx - w * 0.34, y1 + h * 0.13, cx + w * 0.34, y1 + h * 0.5], radius=w * 0.12, fill=shirt
        )
        draw.ellipse([cx - w * 0.17, y1, cx + w * 0.17, y1 + h * 0.14], fill=skin)
    draw.chord(
        [cx - h * 0.08, y1 - h * 0.01, cx + h * 0.08, y1 + h * 0.09],
        180,
        360,
        fill=_jitter(rng, (220, 220, 40), 40),
    )


_DRAW = {"Car": _draw_car, "Person": _draw_person, "Cyclist": _draw_cyclist}
