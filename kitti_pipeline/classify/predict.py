"""Running a trained classifier on crops or frames: `kitti-classify`'s work (its command line is
`classify.commands`).

    kitti-classify --model models/classifier/mobilenet_v2-finetune-s0.pt --out predictions/ \\
        my_crops/*.png data/kitti_subset /data/kitti/training

takes, in any mix:

- crop images (files, or folders of them), each resized to the model's crop size as the crop
  stage resizes a box (`stretch`, or `--resize pad`);
- a frames folder in the study's layout (`images/`, YOLO `labels/`, `classes.txt` naming the
  model's classes), every labelled object cropped as the crop stage crops it;
- a KITTI `training/` folder (`image_2/`, `label_2/`), every object of a type the study keeps
  (Car, Pedestrian as Person, Cyclist) cropped at its pixel box.

and writes `predictions.csv`: per crop the image, the frame's label line and true class (for
frames), the predicted class and the softmax score of every class. Boxes below
`--min-box-size` are not classified: they are listed in `skipped.csv`, as the crop stage lists
them, and counted. A malformed label line stops the command, naming the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kitti_pipeline.classify.model_files import load_classifier
from kitti_pipeline.classify.models import to_device
from kitti_pipeline.classify.train import predict
from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.files import write_csv
from kitti_pipeline.data.boxes import clip
from kitti_pipeline.data.crops import (
    IMAGE_SUFFIXES,
    SKIP_FIELDS,
    Skip,
    check_classes,
    crop_box,
    crop_frame,
    list_frames,
    read_rgb,
    resize_box,
)
from kitti_pipeline.data.labels import KITTI_CLASS_MAP, read_kitti_labels, study_class
from kitti_pipeline.data.subset import kitti_frames


@dataclass(frozen=True)
class CropInput:
    """One crop to classify, where it came from, and its true class when a label gave one."""

    image: Image.Image  # size x size RGB
    source: str  # the crop's file, or its frame's image
    line: int | None = None  # the frame's label line
    actual: str = ""


def whole_image(path: Path, size: int, resize: str) -> CropInput:
    """A crop image file, resized to `size` as the crop stage resizes a box."""
    image = read_rgb(path)
    return CropInput(resize_box(image, (0, 0, *image.size), size, resize), str(path))


def study_frames(
    root: Path, classes: tuple[str, ...], size: int, resize: str, min_box_size: float
) -> tuple[list[CropInput], list[Skip]]:
    """Every labelled object of a frames folder (`images/`, `labels/`), as the crop stage crops."""
    frames, _ = list_frames(root, "error")
    check_classes(root, classes)
    inputs, skips = [], []
    for frame in frames:
        crops, skipped = crop_frame(frame, classes, size, resize, min_box_size, 0.01, "error")
        inputs += [CropInput(c.image, str(frame.image), c.line, c.class_name) for c in crops]
        skips += skipped
    return inputs, skips


def kitti_training_frames(
    root: Path, classes: tuple[str, ...], size: int, resize: str, min_box_size: float
) -> tuple[list[CropInput], list[Skip]]:
    """Every object of a KITTI `training/` folder whose type maps to one of `classes`.

    Raises:
        DatasetError: naming an image without a label file or a label file without an image.
    """
    pairs, inputs, skips = kitti_frames(root), [], []
    for stem in sorted(pairs):
        path, label = pairs[stem]
        image = read_rgb(path)
        for obj in read_kitti_labels(label):
            name = study_class(obj.type, KITTI_CLASS_MAP)
            if name not in classes:
                continue
            box = clip(obj.box, *image.size)
            crop = crop_box(image, box, size, resize, min_box_size, label, obj.line)
            if isinstance(crop, Skip):
                skips.append(crop)
            else:
                inputs.append(CropInput(crop, str(path), obj.line, name))
    return inputs, skips


def gather_inputs(
    items: list[str], classes: tuple[str, ...], size: int, resize: str, min_box_size: float
) -> tuple[list[CropInput], list[Skip]]:
    """The crops of every command-line item: a crop image, a folder of them, a frames folder or
    a KITTI `training/` folder.

    Raises:
        FileNotFoundError: naming an item that does not exist.
    """
    inputs, skips = [], []
    for item in map(Path, items):
        if (item / "labels").is_dir() and (item / "images").is_dir():
            found, skipped = study_frames(item, classes, size, resize, min_box_size)
        elif (item / "label_2").is_dir() and (item / "image_2").is_dir():
            found, skipped = kitti_training_frames(item, classes, size, resize, min_box_size)
        elif item.is_dir():
            paths = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            found, skipped = [whole_image(p, size, resize) for p in paths], []
        elif item.is_file():
            found, skipped = [whole_image(item, size, resize)], []
        else:
            raise FileNotFoundError(f"{item}: no such image or folder")
        inputs += found
        skips += skipped
    return inputs, skips


def classify_crops(
    model: torch.nn.Module, inputs: list[CropInput], classes: tuple[str, ...], device
) -> list[dict]:
    """The predictions.csv rows: each crop's predicted class and softmax score per class."""
    if not inputs:
        return []
    pixels = np.stack([np.asarray(c.image, dtype=np.uint8) for c in inputs])  # (N, S, S, 3)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
    scores = predict(model, images.to(device)).softmax(1).cpu()  # (N, C)
    return [
        {
            "image": c.source,
            "line": c.line or "",
            "actual": c.actual,
            "class": classes[int(s.argmax())],
            **{f"score_{name}": round(float(v), 6) for name, v in zip(classes, s, strict=True)},
        }
        for c, s in zip(inputs, scores, strict=True)
    ]


def classify_images(
    images: list[str],
    model_file: str | Path,
    out: str | Path,
    resize: str = "stretch",
    min_box_size: float = 8.0,
    device: str = "auto",
) -> None:
    """`kitti-classify`: classify crops, or the labelled objects of frames, and write
    `out/predictions.csv` and `out/skipped.csv`."""
    model, record = load_classifier(model_file)  # a bad file is named before any device notice
    device = resolve_device(device)
    to_device(model, record["arch"], device)
    classes, size = tuple(record["classes"]), record["image_size"]
    inputs, skips = gather_inputs(images, classes, size, resize, min_box_size)
    rows = classify_crops(model, inputs, classes, device)
    out = Path(out)
    fields = ["image", "line", "actual", "class", *(f"score_{c}" for c in classes)]
    write_csv(out / "predictions.csv", rows, fields)
    write_csv(out / "skipped.csv", [s.row() for s in skips], SKIP_FIELDS)
    labelled = [r for r in rows if r["actual"]]
    right = sum(r["actual"] == r["class"] for r in labelled)
    accuracy = f"; {right} of {len(labelled)} labelled crops right" if labelled else ""
    print(
        f"kitti-classify: {len(rows)} crops classified by {record['arch']} {record['regime']} "
        f"(seed {record['seed']}){accuracy}; {len(skips)} boxes below --min-box-size skipped "
        f"(skipped.csv); wrote {out / 'predictions.csv'}"
    )
