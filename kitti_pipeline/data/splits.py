"""A leak-free train/val/test split: stratified by class, grouped by source frame.

Crops of one frame share its scene, lighting and often the same car seen twice; putting them in
two splits would leak test information into training. So whole frames are assigned to splits,
greedily, each frame going to the split whose per-class quotas it helps fill the most. Frames
holding rare classes are placed first, while every split still has room for them. Sizes are met
as closely as whole frames allow; the sizes reached are reported, not assumed.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from kitti_pipeline.core.params import SplitParams

SPLITS = ("train", "val", "test")
# The detector's frame split: every frame of the dataset, the split it is read in, and why a frame
# is `left_out`.
FRAME_SPLIT_FIELDS = ["frame", "split", "drive", "reason"]
# In a frames folder, beside images/ and labels/: each frame's drive (`kitti-subset --mapping`).
DRIVES_FILE = "drives.csv"
LEFT_OUT = "left_out"
# The columns of the crop split (`data/split.csv`: the crop manifest and a `split` column) that
# its readers use.
CROP_SPLIT_FIELDS = ("crop", "class", "frame", "split")
# Crop-stage skips that leave a frame's image unread or its labels incomplete: the detector would
# learn its unlabelled objects as background, so the whole frame is left out of the detector's
# splits (the classifier keeps the crops of its good lines).
BAD_INPUT = ("bad_label", "unreadable_image", "image_without_label", "label_without_image")


def split_frames(
    frame_classes: dict[str, list[str]],
    classes: tuple[str, ...],
    train_crops: int,
    val_crops: int,
    test_crops: int | None,
    seed: int,
) -> dict[str, str]:
    """Assign every frame to `train`, `val` or `test`.

    Args:
        frame_classes: Frame -> the class of each of its crops.
        classes: All class names.
        train_crops, val_crops: Target crop counts.
        test_crops: Target crop count, or None for every crop left over.
        seed: Breaks ties between frames of the same make-up.

    Returns:
        Frame -> split name.

    Raises:
        ValueError: when the targets ask for more crops than exist.
    """
    total = sum(len(v) for v in frame_classes.values())
    asked = train_crops + val_crops + (test_crops or 0)
    if min(train_crops, val_crops, test_crops or 0) < 0:
        raise ValueError("split sizes must not be negative")
    if asked > total:
        raise ValueError(
            f"the split asks for {asked} crops "
            f"(train {train_crops}, val {val_crops}, test {test_crops}) "
            f"but the crop stage produced only {total}"
        )
    sizes = np.array(
        [
            train_crops,
            val_crops,
            total - train_crops - val_crops if test_crops is None else test_crops,
        ],
        dtype=float,
    )
    counts = {
        f: np.array([Counter(c)[k] for k in classes], dtype=float) for f, c in frame_classes.items()
    }
    share = sum(counts.values()) / max(total, 1)  # (K,) class proportions
    quota = sizes[:, None] * share[None, :]  # (3, K) crops of each class each split should get
    filled = np.zeros_like(quota)

    rng = np.random.default_rng(seed)
    frames = sorted(frame_classes)
    rng.shuffle(frames)
    rarity = 1.0 / np.maximum(sum(counts.values()), 1)
    frames.sort(key=lambda f: -float(counts[f] @ rarity))  # stable: ties keep the shuffle

    assignment = {}
    for frame in frames:
        c = counts[frame]
        need = (quota - filled) / np.maximum(quota, 1e-9)  # (3, K) relative room left
        need[quota == 0] = -1.0  # never put a class into a split that should hold none
        score = need @ c
        # A split already at its size takes nothing more unless every split is.
        full = filled.sum(1) + c.sum() > sizes + 0.5 * c.sum()
        score[full] -= 1e6
        choice = int(np.argmax(score))
        assignment[frame] = SPLITS[choice]
        filled[choice] += c
    return assignment


def read_crop_split(path: str | Path) -> list[dict[str, str]]:
    """The rows of a crop split file (the split stage's `data/split.csv`).

    Raises:
        ValueError: naming the file, for a header that lacks a column of `CROP_SPLIT_FIELDS` or
            a row whose split is not train, val or test.
    """
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CROP_SPLIT_FIELDS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}: header {reader.fieldnames} lacks {missing}: not a crop split "
                "(the split stage writes data/split.csv)"
            )
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        if row["split"] not in SPLITS:
            raise ValueError(f"{path}:{line}: unknown split {row['split']!r}")
    return rows


def split_rows(
    rows: list[dict],
    classes: tuple[str, ...],
    cfg: SplitParams,
    drives: dict[str, str] | None = None,
) -> list[dict]:
    """The crop manifest's rows with a `split` column (`split_frames`): whole frames to a split,
    or, given each frame's drive, whole drives.

    Raises:
        ValueError: when `drives` lacks a frame of the manifest.
    """
    if drives is not None:
        missing = sorted({r["frame"] for r in rows} - drives.keys())
        if missing:
            raise ValueError(
                f"{DRIVES_FILE} names no drive for {len(missing)} frames, e.g. {missing[0]}"
            )
    group = (lambda frame: frame) if drives is None else drives.__getitem__
    group_classes = defaultdict(list)
    for row in rows:
        group_classes[group(row["frame"])].append(row["class"])
    assignment = split_frames(dict(group_classes), classes, *cfg.counts(len(rows)), cfg.seed)
    return [{**r, "split": assignment[group(r["frame"])]} for r in rows]


def dataset_metrics(
    rows: list[dict], frame_rows: list[dict], crop_summary: dict, classes, cfg: SplitParams
) -> dict:
    """The dataset's metrics: Table 1, frames per split, what the split grouped by, the sizes
    asked for, and the skips.

    Args:
        rows: The split file's rows.
        frame_rows: The frame split's rows (`frame_split`).
        crop_summary: The crop stage's `summary.json`.
        classes: Class names, in column order.
        cfg: The split params (the sizes asked for).
    """
    frames = {s: len({r["frame"] for r in rows if r["split"] == s}) for s in SPLITS}
    skipped = crop_summary["skipped"]
    return {
        "crops": count_table(rows, classes),
        "frames": {**frames, "read": crop_summary["frames"]},
        "split_by": "drive" if any(r["drive"] for r in frame_rows) else "frame",
        "detector_frames": {
            **{s: sum(r["split"] == s for r in frame_rows) for s in SPLITS},
            LEFT_OUT: sum(r["split"] == LEFT_OUT for r in frame_rows),
        },
        "requested": {"train": cfg.train_crops, "val": cfg.val_crops, "test": cfg.test_crops},
        "skipped": {"total": sum(skipped.values()), **skipped},
    }


def example_rows(rows: list[dict], classes, seed: int, per_class: int) -> list[dict]:
    """A few random training crops of every class (so rare classes show too), class by class."""
    rng = np.random.default_rng(seed)
    picked = []
    for name in classes:
        of_class = [r for r in rows if r["split"] == "train" and r["class"] == name]
        picks = rng.permutation(len(of_class))[:per_class]
        picked += [of_class[i] for i in sorted(picks)]
    return picked


def count_table(rows: list[dict], classes: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """The study's Table 1: crops per split and class, plus a row for all splits.

    Args:
        rows: Crop records with `split` and `class`.
        classes: Class names, in column order.

    Returns:
        `{split: {"total": n, class: n, ...}}` for each split and `all`.
    """
    table = {}
    for split in (*SPLITS, "all"):
        chosen = Counter(r["class"] for r in rows if split == "all" or r["split"] == split)
        table[split] = {"total": sum(chosen.values()), **{k: chosen[k] for k in classes}}
    return table


def frame_split(
    rows: list[dict], stems: list[str], skips: list[dict], drives: dict[str, str] | None = None
) -> list[dict]:
    """The detector's frame split: each frame with its crops' split, or left out.

    Args:
        rows: The crop split's rows (`frame`, `split`, ...).
        stems: Every image of the frames folder.
        skips: The crop stage's `skipped.csv` rows (`reason`, `path`, ...).
        drives: Each frame's drive, when known.

    Returns:
        Rows `frame, split, drive, reason` in frame order: a frame the crop stage skipped bad
        input of (`BAD_INPUT`) is `left_out` with that reason; every other frame takes its
        crops' split, or without a crop its drive's split, or `train` (`frames_by_split`).
    """
    drives = drives or {}
    left_out: dict[str, str] = {}
    for skip in skips:
        if skip["reason"] in BAD_INPUT:
            left_out.setdefault(Path(skip["path"]).stem, skip["reason"])
    kept_rows = [r for r in rows if r["frame"] not in left_out]
    drive_split = {drives[r["frame"]]: r["split"] for r in kept_rows if r["frame"] in drives}
    cropped = {r["frame"] for r in kept_rows}
    kept_rows += [  # a frame without crops goes where the rest of its drive went
        {"frame": s, "split": drive_split[drives[s]]}
        for s in stems
        if s not in cropped and s not in left_out and drives.get(s) in drive_split
    ]
    kept = frames_by_split(kept_rows, [s for s in stems if s not in left_out])
    out = [
        {"frame": f, "split": s, "drive": drives.get(f, ""), "reason": ""}
        for s, frames in kept.items()
        for f in frames
    ]
    out += [
        {"frame": f, "split": LEFT_OUT, "drive": drives.get(f, ""), "reason": r}
        for f, r in left_out.items()
    ]
    return sorted(out, key=lambda r: r["frame"])


def frames_by_split(rows: list[dict], stems: list[str]) -> dict[str, list[str]]:
    """The frames of each split, for the detector: the crop split read per frame.

    Args:
        rows: The split file's rows (`frame`, `split`, ...).
        stems: Every frame of the dataset. Frames without a crop (all their objects skipped
            or none at all) hold nothing to leak, and train as background.

    Returns:
        Split name -> sorted frame stems.

    Raises:
        ValueError: when a frame is in two splits or the split names a frame not in `stems`.
    """
    assigned: dict[str, str] = {}
    for row in rows:
        if assigned.setdefault(row["frame"], row["split"]) != row["split"]:
            raise ValueError(
                f"frame {row['frame']} is in both {assigned[row['frame']]} and {row['split']}"
            )
    unknown = sorted(set(assigned) - set(stems))
    if unknown:
        raise ValueError(
            f"the split names {len(unknown)} frames not in the dataset, e.g. {unknown[0]}"
        )
    out = {name: [] for name in SPLITS}
    for stem in sorted(stems):
        out[assigned.get(stem, "train")].append(stem)
    return out
