"""Build the study's subset from an official KITTI object `training/` folder.

    kitti-subset --training /data/kitti/training --out data/kitti_subset --frames 500 --seed 0

picks N frames (or `--frames all`) by seed from `image_2/` + `label_2/`, copies the images,
converts the labels to the study's YOLO format (Car, Person <- Pedestrian, Cyclist; every other
KITTI type ignored and counted), keeps the native labels in `label_2/` beside them, and writes
`subset.json` recording the frames chosen and what was ignored. Point `data.frames` in
params.yaml at the result.

KITTI's object frames come from a few dozen drives, and neighbouring frames of one drive look
alike: with `--mapping DIR` (the devkit's `mapping/` folder) it writes each frame's drive to
`drives.csv`, and the split stage keeps every drive in one split. Without it the split groups by
frame, and the report says so.

A malformed label line or an unreadable image stops it, naming the file (and line). With
`--on-bad-input skip` that frame is left out instead, and `subset.json` lists it with the
problem: a frame whose labels are not all known would teach the detector that its unlabelled
objects are background.
"""

from __future__ import annotations

import argparse
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from kitti_pipeline.core.cli import run_cli
from kitti_pipeline.core.files import atomic_dir, write_csv, write_json
from kitti_pipeline.core.params import CLASSES
from kitti_pipeline.data.crops import IMAGE_SUFFIXES, DatasetError
from kitti_pipeline.data.labels import (
    KITTI_CLASS_MAP,
    LabelError,
    kitti_to_yolo,
    read_kitti_labels,
)
from kitti_pipeline.data.splits import DRIVES_FILE


def select_frames(stems: list[str], count: int, seed: int) -> list[str]:
    """`count` frames drawn without replacement by `seed`, in sorted order."""
    if count > len(stems):
        raise ValueError(f"asked for {count} frames, but only {len(stems)} are available")
    chosen = np.random.default_rng(seed).choice(sorted(stems), size=count, replace=False)
    return sorted(str(s) for s in chosen)


def frame_count(text: str) -> int | None:
    """`--frames`: a positive number of frames, or `all` (None)."""
    if text == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of frames or 'all', got {text!r}"
        )
    return count


def read_drive_mapping(folder: Path) -> dict[str, str]:
    """Training frame stem -> the raw drive it was taken from, from the devkit's `mapping/`.

    `train_rand.txt` is one line of comma-separated 1-based indices, the i-th for training frame
    i (`000000` first); each names a line of `train_mapping.txt`, `date drive frame` of the raw
    recording (`2011_09_26 2011_09_26_drive_0005_sync 0000000109`).

    Raises:
        DatasetError: naming the file (and line) that is missing or malformed.
    """
    rand_path, mapping_path = folder / "train_rand.txt", folder / "train_mapping.txt"
    for path in (rand_path, mapping_path):
        if not path.is_file():
            raise DatasetError(f"{path}: missing (--mapping takes the devkit's mapping/ folder)")
    drives = []
    for number, line in enumerate(mapping_path.read_text().splitlines(), start=1):
        fields = line.split()
        if len(fields) != 3:
            raise DatasetError(f"{mapping_path}:{number}: expected 'date drive frame': {line!r}")
        drives.append(fields[1])
    out = {}
    for i, entry in enumerate(rand_path.read_text().replace("\n", "").split(",")):
        if not entry.strip():
            continue
        try:
            index = int(entry)
        except ValueError:
            index = 0
        if not 1 <= index <= len(drives):
            raise DatasetError(
                f"{rand_path}: entry {i + 1} ({entry.strip()!r}) is not a line of {mapping_path} "
                f"(1 to {len(drives)})"
            )
        out[f"{i:06d}"] = drives[index - 1]
    return out


def kitti_frames(training: Path) -> dict[str, tuple[Path, Path]]:
    """Frame stem -> (image, label) in a KITTI `training/` folder; unpaired files raise."""
    images = (
        {p.stem: p for p in (training / "image_2").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        if (training / "image_2").is_dir()
        else {}
    )
    labels = (
        {p.stem: p for p in (training / "label_2").glob("*.txt")}
        if (training / "label_2").is_dir()
        else {}
    )
    if not images or not labels:
        raise DatasetError(f"{training}: expected KITTI's image_2/ and label_2/ folders with files")
    for stem in sorted(labels.keys() ^ images.keys()):
        path = labels.get(stem) or images[stem]
        raise DatasetError(
            f"{path}: no matching {'image' if stem in labels else 'label'} for frame '{stem}'"
        )
    return {s: (images[s], labels[s]) for s in images}


def image_size(path: Path) -> tuple[int, int]:
    """The (width, height) of an image file, after decoding it whole.

    Raises:
        DatasetError: naming the file, when it is not an image or is cut short.
    """
    try:
        with Image.open(path) as opened:
            opened.load()
            return opened.size
    except (OSError, SyntaxError) as err:  # PIL's errors for unreadable and truncated files
        raise DatasetError(f"{path}: cannot read image ({err})") from None


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--training", type=Path, required=True, help="KITTI object training/ folder"
    )
    parser.add_argument("--out", type=Path, required=True, help="subset folder to create")
    parser.add_argument(
        "--frames",
        type=frame_count,
        default=500,
        help="how many frames to draw (default 500, the study's count), or 'all'",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="which frames are drawn (a new seed, a new subset)"
    )
    parser.add_argument(
        "--mapping",
        type=Path,
        help="the devkit's mapping/ folder (train_rand.txt, train_mapping.txt): writes each "
        "frame's drive to drives.csv, and the split keeps each drive in one split",
    )
    parser.add_argument(
        "--on-bad-input",
        choices=("error", "skip"),
        default="error",
        help="a malformed label line or unreadable image: stop (error), or leave its frame out "
        "and list it in subset.json (skip)",
    )
    args = parser.parse_args(argv)

    drives = read_drive_mapping(args.mapping) if args.mapping else None
    available = kitti_frames(args.training)
    count = len(available) if args.frames is None else args.frames
    chosen = select_frames(list(available), count, args.seed)
    ignored, written, skipped, clipped = Counter(), [], [], 0
    with atomic_dir(args.out) as out:
        for sub in ("images", "labels", "label_2"):
            (out / sub).mkdir()
        (out / "classes.txt").write_text("\n".join(CLASSES) + "\n")
        for stem in chosen:
            image, label = available[stem]
            if drives is not None and stem not in drives:
                raise DatasetError(f"{args.mapping}/train_rand.txt: no entry for frame {stem}")
            try:
                width, height = image_size(image)
                objects = read_kitti_labels(label)
                lines, types, cut = kitti_to_yolo(
                    objects, width, height, CLASSES, KITTI_CLASS_MAP, source=label
                )
            except (DatasetError, LabelError) as err:
                if args.on_bad_input == "error":
                    raise
                skipped.append({"frame": stem, "problem": str(err)})
                continue
            ignored.update(types)
            clipped += cut
            written.append(stem)
            shutil.copyfile(image, out / "images" / image.name)
            shutil.copyfile(label, out / "label_2" / label.name)
            (out / "labels" / f"{stem}.txt").write_text("".join(f"{x}\n" for x in lines))
        if drives is not None:
            write_csv(
                out / DRIVES_FILE,
                [{"frame": f, "drive": drives[f]} for f in written],
                ["frame", "drive"],
            )
        write_json(
            out / "subset.json",
            {
                "source": str(args.training),
                "seed": args.seed,
                "frames": written,
                "class_map": KITTI_CLASS_MAP,
                "ignored": dict(sorted(ignored.items())),
                "clipped_to_the_frame": clipped,
                "skipped": skipped,
                "drives": len({drives[f] for f in written}) if drives is not None else None,
            },
        )
    print(
        f"kitti-subset: {len(written)} frames written to {args.out}; "
        f"ignored objects: {dict(sorted(ignored.items())) or 'none'}; "
        f"{clipped} kept boxes clipped to their frame"
    )
    if skipped:
        print(
            f"kitti-subset: {len(skipped)} of the {len(chosen)} frames drawn left out for bad "
            f"input (listed in subset.json), the first: {skipped[0]['problem']}"
        )


def cli() -> None:
    """The console command: `main` with one-line errors (see `core.cli.run_cli`)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
