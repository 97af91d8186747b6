"""Object crops from a frames folder in the study's layout.

The folder holds `images/<stem>.png|jpg`, `labels/<stem>.txt` (YOLO format) and `classes.txt`.
Each labelled box is denormalised, clipped to its frame, checked against a minimum size and
resized to a square crop. Bad input either raises (naming file and line) or, when
`on_bad_input: skip`, becomes a `Skip` record that the dataset metrics count: nothing is dropped
silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from kitti_pipeline.data.boxes import Box, box_size, clip, denormalise
from kitti_pipeline.data.labels import LabelError, read_classes, read_yolo_labels_lenient

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MANIFEST_FIELDS = ["crop", "class", "class_id", "frame", "line", "x1", "y1", "x2", "y2"]
SKIP_FIELDS = ["reason", "path", "line", "detail"]


class DatasetError(ValueError):
    """The frames folder cannot be used as it is."""


@dataclass(frozen=True)
class Frame:
    stem: str
    image: Path
    labels: Path


@dataclass(frozen=True)
class Skip:
    """Something left out of the crops, and why."""

    reason: str  # small_box, bad_label, label_without_image, image_without_label, unreadable_image
    path: str
    line: int | None
    detail: str

    def row(self) -> dict:
        return {
            "reason": self.reason,
            "path": self.path,
            "line": self.line or "",
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Crop:
    name: str  # file name of the crop, `<frame stem>_<label line>.png`
    image: Image.Image
    class_name: str
    class_id: int
    frame: str
    line: int
    box: Box  # clipped pixel box in the frame

    def row(self, folder: str = "images") -> dict:
        x1, y1, x2, y2 = (f"{v:.2f}" for v in self.box)
        return {
            "crop": f"{folder}/{self.name}",
            "class": self.class_name,
            "class_id": self.class_id,
            "frame": self.frame,
            "line": self.line,
            "x1": x1,
            "y1": y1,
            "x2": x2,
            "y2": y2,
        }


def check_classes(root: str | Path, classes: tuple[str, ...]) -> None:
    """Raise `DatasetError` unless the folder's `classes.txt` lists exactly `classes`, in order.

    A folder without one (the course ships its 500 images and labels without it) is refused with
    the line that writes it: class ids mean nothing without their names.
    """
    path = Path(root) / "classes.txt"
    if not path.is_file():
        names = "\\n".join(classes)
        raise DatasetError(
            f"{path}: no such file; it names the labels' class ids in order, one a line. If "
            f"the ids are data.classes' order, write it with: printf '{names}\\n' > {path}"
        )
    found = read_classes(path)
    if found != classes:
        raise DatasetError(
            f"{root}/classes.txt lists {list(found)}, but data.classes is {list(classes)}"
        )


def crop_summary(frames: int, crops: int, skips: list[Skip]) -> dict:
    """The crop stage's counts: frames read, crops written, and skips by reason."""
    return {
        "frames": frames,
        "crops": crops,
        "skipped": dict(sorted(Counter(s.reason for s in skips).items())),
    }


def list_frames(root: str | Path, on_bad_input: str) -> tuple[list[Frame], list[Skip]]:
    """Pair `images/` with `labels/` by file stem.

    Args:
        root: The frames folder.
        on_bad_input: `error` raises on a label without an image or an image without a label;
            `skip` leaves the frame out and reports it.

    Returns:
        The paired frames sorted by stem, and what was skipped.
    """
    root = Path(root)
    for sub in ("images", "labels"):
        if not (root / sub).is_dir():
            raise DatasetError(
                f"{root}: no '{sub}/' folder (expected images/, labels/, classes.txt)"
            )
    nested = sorted(p for p in (root / "images").iterdir() if p.is_dir())
    if nested:
        raise DatasetError(
            f"{nested[0]}/: a split tree (images/<split>/, labels/<split>/, as ultralytics "
            f"lays data out) is not read; put every image in {root / 'images'}/ and every label "
            f"in {root / 'labels'}/: the split stage draws its own split"
        )
    images: dict[str, Path] = {}
    for path in sorted((root / "images").iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in images:
            raise DatasetError(
                f"{path}: two images for frame '{path.stem}' ({images[path.stem].name})"
            )
        images[path.stem] = path
    labels = {p.stem: p for p in sorted((root / "labels").glob("*.txt"))}
    problems = [
        Skip("label_without_image", str(labels[s]), None, f"no image for frame '{s}'")
        for s in sorted(labels.keys() - images.keys())
    ]
    problems += [
        Skip("image_without_label", str(images[s]), None, f"no label file for frame '{s}'")
        for s in sorted(images.keys() - labels.keys())
    ]
    if problems and on_bad_input == "error":
        raise DatasetError(
            f"{problems[0].path}: {problems[0].detail} "
            f"({len(problems)} unpaired files; set crop.on_bad_input: skip to skip)"
        )
    frames = [Frame(s, images[s], labels[s]) for s in sorted(images.keys() & labels.keys())]
    if not frames:
        raise DatasetError(
            f"{root}: no frames: no image in images/ ({', '.join(IMAGE_SUFFIXES)}) has a label "
            "of the same name in labels/"
        )
    return frames, problems


def crop_frame(
    frame: Frame,
    classes: tuple[str, ...],
    image_size: int,
    resize: str,
    min_box_size: float,
    tolerance: float,
    on_bad_input: str,
) -> tuple[list[Crop], list[Skip]]:
    """Crop every labelled object of one frame.

    Args:
        frame: The image and its label file.
        classes: Class names in id order.
        image_size: Side of the square crops in pixels.
        resize: `stretch` scales the box to a square (the study's choice); `pad` keeps the aspect
            ratio and pads the short side with black.
        min_box_size: Boxes whose clipped width or height is below this many pixels are skipped.
        tolerance: How far outside [0, 1] a normalised label value may stray.
        on_bad_input: `error` or `skip` for malformed lines and unreadable images.

    Returns:
        The crops, and what was skipped.
    """
    try:
        image = read_rgb(frame.image)
    except DatasetError as err:
        if on_bad_input == "error":
            raise
        return [], [Skip("unreadable_image", str(frame.image), None, str(err))]
    labels, errors = read_yolo_labels_lenient(frame.labels, len(classes), tolerance)
    if errors and on_bad_input == "error":
        raise errors[0]
    skips = [_bad_label(e) for e in errors]
    crops = []
    for label in labels:
        box = clip(denormalise(label.cx, label.cy, label.w, label.h, *image.size), *image.size)
        crop = crop_box(image, box, image_size, resize, min_box_size, frame.labels, label.line)
        if isinstance(crop, Skip):
            skips.append(crop)
            continue
        crops.append(
            Crop(
                name=f"{frame.stem}_{label.line:03d}.png",
                image=crop,
                class_name=classes[label.class_id],
                class_id=label.class_id,
                frame=frame.stem,
                line=label.line,
                box=box,
            )
        )
    return crops, skips


def read_rgb(path: str | Path) -> Image.Image:
    """An image file as RGB.

    Raises:
        DatasetError: naming the file, when it cannot be read as an image.
    """
    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f"{path}: cannot read image ({err})") from None


def crop_box(
    image: Image.Image,
    box: Box,
    size: int,
    resize: str,
    min_box_size: float,
    labels: str | Path,
    line: int,
) -> Image.Image | Skip:
    """The crop of a clipped pixel `box` (`resize_box`), or a `small_box` skip naming the label
    file and line when its width or height is below `min_box_size` pixels."""
    w, h = box_size(box)
    if min(w, h) < min_box_size:
        detail = f"{w:.1f}x{h:.1f} px is below min_box_size {min_box_size}"
        return Skip("small_box", str(labels), line, detail)
    return resize_box(image, box, size, resize)


def resize_box(image: Image.Image, box: Box, size: int, mode: str) -> Image.Image:
    """The region `box` of `image` as a `size` x `size` crop.

    The box is rounded to whole pixels and cut out before scaling, so the crop holds only pixels
    of the box (resizing straight from the frame would let the filter pull in pixels around it).
    """
    x1, y1, x2, y2 = (round(v) for v in box)
    region = image.crop((x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)))
    if mode == "stretch":
        return region.resize((size, size), Image.Resampling.BILINEAR)
    if mode == "pad":
        scale = size / max(region.size)
        inner = (max(1, round(region.width * scale)), max(1, round(region.height * scale)))
        canvas = Image.new("RGB", (size, size))
        canvas.paste(
            region.resize(inner, Image.Resampling.BILINEAR),
            ((size - inner[0]) // 2, (size - inner[1]) // 2),
        )
        return canvas
    raise ValueError(f"Invalid resize mode {mode!r}: expected 'stretch' or 'pad'")


def _bad_label(error: LabelError) -> Skip:
    return Skip("bad_label", error.path, error.line, error.problem)
