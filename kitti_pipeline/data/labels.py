"""Label files: the study's YOLO format and KITTI's native `label_2` format.

YOLO: one object a line, `class_id cx cy w h`, the box normalised to the frame; `classes.txt` beside
the labels names the ids in order.

KITTI `label_2`: one object a line, 15 fields: type, truncated (0..1), occluded (0 visible,
1 partly, 2 largely occluded, 3 unknown), alpha, bbox `x1 y1 x2 y2` in pixels, dimensions
`h w l`, location `x y z` in camera coordinates, rotation_y (a 16th field, score, appears in
detection results).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kitti_pipeline.data.boxes import Box, clip, normalise

# KITTI type -> study class. Every other type (Van, Truck, Person_sitting, Tram, Misc, DontCare) is
# ignored and counted, as in the study, which keeps only these three.
KITTI_CLASS_MAP = {"Car": "Car", "Pedestrian": "Person", "Cyclist": "Cyclist"}
# The devkit's neighbouring types: its Car evaluation neither counts a van nor punishes a car
# detected on one, its Pedestrian evaluation likewise a sitting person.
KITTI_NEIGHBOURS = {"Car": "Van", "Pedestrian": "Person_sitting"}


def same_kitti_type(a: str, b: str) -> bool:
    """Whether two KITTI type names are one type: the devkit compares them case-blind
    (`strcasecmp`), so `car`, `Car` and `CAR` are all a Car. The one rule every stage uses."""
    return a.lower() == b.lower()


def study_class(kitti_type: str, class_map: dict[str, str]) -> str | None:
    """The study class a KITTI type maps to under `class_map` (types compared case-blind), or
    None for an ignored type."""
    return next((c for t, c in class_map.items() if same_kitti_type(t, kitti_type)), None)


def ignored_kitti_types(
    study_classes: tuple[str, ...], class_map: dict[str, str] = KITTI_CLASS_MAP
) -> tuple[str, ...]:
    """The `label_2` types a detector of `study_classes` is neither taught nor punished on, as
    the devkit's evaluation ignores them: `DontCare` regions and each class's neighbouring type
    (a van for a car: a car detector that fires on one is not wrong by KITTI's rule).

    Example: `("Car",)` gives `("DontCare", "Van")`; `("Cyclist",)` only `("DontCare",)`.
    """
    kitti_types = [t for t, c in class_map.items() if c in study_classes]
    return ("DontCare", *(KITTI_NEIGHBOURS[t] for t in kitti_types if t in KITTI_NEIGHBOURS))


class LabelError(ValueError):
    """A label file that cannot be used, with the file and line to fix."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class YoloLabel:
    """One line of a YOLO label file; `line` is 1-based."""

    class_id: int
    cx: float
    cy: float
    w: float
    h: float
    line: int


@dataclass(frozen=True)
class KittiObject:
    """One line of a KITTI `label_2` file; `line` is 1-based."""

    type: str
    truncated: float
    occluded: int
    alpha: float
    box: Box
    dimensions: tuple[float, float, float]
    location: tuple[float, float, float]
    rotation_y: float
    line: int


def read_classes(path: str | Path) -> tuple[str, ...]:
    """Class names from `classes.txt`, one a line, in id order."""
    names = tuple(n.strip() for n in Path(path).read_text().splitlines() if n.strip())
    if not names:
        raise LabelError(path, None, "no class names")
    if len(set(names)) != len(names):
        raise LabelError(path, None, f"duplicate class names in {list(names)}")
    return names


def parse_yolo_line(text: str, line: int, num_classes: int, tolerance: float) -> YoloLabel:
    """Parse `class_id cx cy w h`.

    Args:
        text: The line, without its newline.
        line: Its 1-based number, kept on the label.
        num_classes: Ids must lie in `[0, num_classes)`.
        tolerance: How far outside `[0, 1]` a normalised value may stray (rounding in exporters);
            the box is clipped to the frame later.

    Raises:
        ValueError: saying what is wrong with the line.
    """
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields 'class_id cx cy w h', got {len(fields)}: {text!r}")
    try:
        class_id = int(fields[0])
    except ValueError:
        raise ValueError(f"class id {fields[0]!r} is not an integer") from None
    if not 0 <= class_id < num_classes:
        raise ValueError(f"class id {class_id} out of range [0, {num_classes})")
    values = []
    for name, field in zip(("cx", "cy", "w", "h"), fields[1:], strict=True):
        try:
            value = float(field)
        except ValueError:
            raise ValueError(f"{name} {field!r} is not a number") from None
        if not math.isfinite(value) or not -tolerance <= value <= 1 + tolerance:
            raise ValueError(f"{name} {field} is outside [0, 1] (tolerance {tolerance})")
        values.append(value)
    cx, cy, w, h = values
    if w <= 0 or h <= 0:
        raise ValueError(f"zero-size box (w {fields[3]}, h {fields[4]})")
    return YoloLabel(class_id, cx, cy, w, h, line)


def read_yolo_labels(path: str | Path, num_classes: int, tolerance: float) -> list[YoloLabel]:
    """Read a YOLO label file; blank lines are allowed, anything else malformed raises.

    Raises:
        LabelError: naming the file and line.
    """
    labels, errors = read_yolo_labels_lenient(path, num_classes, tolerance)
    if errors:
        raise errors[0]
    return labels


def read_yolo_labels_lenient(
    path: str | Path, num_classes: int, tolerance: float
) -> tuple[list[YoloLabel], list[LabelError]]:
    """Read a YOLO label file, keeping the good lines and returning one error per bad line."""
    labels, errors = [], []
    for number, text in enumerate(Path(path).read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            labels.append(parse_yolo_line(text, number, num_classes, tolerance))
        except ValueError as err:
            errors.append(LabelError(path, number, str(err)))
    return labels, errors


def format_yolo_line(class_id: int, cx: float, cy: float, w: float, h: float) -> str:
    return f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def parse_kitti_line(text: str, line: int) -> KittiObject:
    """Parse one KITTI `label_2` line (15 fields, or 16 with a score).

    Raises:
        ValueError: saying what is wrong with the line.
    """
    fields = text.split()
    if len(fields) not in (15, 16):
        raise ValueError(f"expected 15 KITTI fields, got {len(fields)}: {text!r}")
    names = (
        "truncated",
        "occluded",
        "alpha",
        "x1",
        "y1",
        "x2",
        "y2",
        "h",
        "w",
        "l",
        "x",
        "y",
        "z",
        "rotation_y",
    )
    values = {}
    for name, field in zip(names, fields[1:15], strict=True):
        try:
            values[name] = float(field)
        except ValueError:
            raise ValueError(f"{name} {field!r} is not a number") from None
        if not math.isfinite(values[name]):
            raise ValueError(f"{name} {field!r} is not a finite number")
    occluded = values["occluded"]
    if occluded not in (-1, 0, 1, 2, 3):
        raise ValueError(f"occluded {fields[2]} is not one of 0, 1, 2, 3")
    truncated = values["truncated"]
    if not (0 <= truncated <= 1 or truncated == -1):  # -1: DontCare
        raise ValueError(f"truncated {fields[1]} is not between 0 and 1")
    return KittiObject(
        type=fields[0],
        truncated=values["truncated"],
        occluded=int(occluded),
        alpha=values["alpha"],
        box=(values["x1"], values["y1"], values["x2"], values["y2"]),
        dimensions=(values["h"], values["w"], values["l"]),
        location=(values["x"], values["y"], values["z"]),
        rotation_y=values["rotation_y"],
        line=line,
    )


def read_kitti_labels(path: str | Path) -> list[KittiObject]:
    """Read a KITTI `label_2` file.

    Raises:
        LabelError: naming the file and line.
    """
    objects = []
    for number, text in enumerate(Path(path).read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            objects.append(parse_kitti_line(text, number))
        except ValueError as err:
            raise LabelError(path, number, str(err)) from None
    return objects


def format_kitti_line(obj: KittiObject) -> str:
    x1, y1, x2, y2 = obj.box
    h, w, l = obj.dimensions  # noqa: E741 (KITTI's own name for length)
    x, y, z = obj.location
    return (
        f"{obj.type} {obj.truncated:.2f} {obj.occluded:d} {obj.alpha:.2f} "
        f"{x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} {h:.2f} {w:.2f} {l:.2f} "
        f"{x:.2f} {y:.2f} {z:.2f} {obj.rotation_y:.2f}"
    )


def kitti_to_yolo(
    objects: list[KittiObject],
    width: int,
    height: int,
    classes: tuple[str, ...],
    class_map: dict[str, str],
    source: str | Path = "<label_2>",
) -> tuple[list[str], Counter, int]:
    """Convert KITTI objects of one frame to YOLO lines.

    Args:
        objects: The frame's objects.
        width, height: The frame size in pixels.
        classes: Study class names in id order.
        class_map: KITTI type -> study class name; other types are ignored.
        source: The label file, for error messages.

    Returns:
        The YOLO lines, how many objects of each KITTI type were ignored (as the file spells
        it), and how many kept boxes reached past the frame and were clipped to it.

    Raises:
        LabelError: for a kept object whose box is empty inside the frame.
    """
    lines, ignored, clipped = [], Counter(), Counter()
    for obj in objects:
        name = study_class(obj.type, class_map)
        if name is None:
            ignored[obj.type] += 1
            continue
        if name not in classes:
            raise ValueError(
                f"class map sends {obj.type!r} to {name!r}, not one of {list(classes)}"
            )
        box = clip(obj.box, width, height)
        if box[2] <= box[0] or box[3] <= box[1]:
            raise LabelError(
                source, obj.line, f"zero-size box {obj.box} in a {width}x{height} frame"
            )
        clipped[box != tuple(obj.box)] += 1
        lines.append(format_yolo_line(classes.index(name), *normalise(box, width, height)))
    return lines, ignored, clipped[True]
