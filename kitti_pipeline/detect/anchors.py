"""Dataset anchors: k-means of the training boxes' shapes with IoU distance, and how well a set
of anchors fits them.

    kitti-anchors --frames data/synthetic --split data/frame_split.csv --out cfg/yolov3-kitti.cfg

reads the training frames' boxes letterboxed to `detector.img_size` (the detector's classes
only), clusters their (width, height) into as many anchors as the cfg has, and writes a copy of
`detector.cfg` with those anchors in every [yolo] block, smallest first (the finest scale's mask
takes the smallest), with a report of the cfg's anchors against the new ones:

- mean best IoU: the mean over boxes of the shape IoU (boxes and anchors on a common centre) of
  each box with its best anchor, what YOLOv3 assigns a ground truth by;
- best possible recall: the share of boxes whose best anchor's shape IoU is at least
  `--threshold` (0.5 by default: the loss's `ignore_iou`).

The clustering (YOLOv2's, with medians): start from the boxes at k evenly spaced ranks of area
(deterministic, and one per size band, where k boxes drawn at random can fall in one band and
stay there), then assign each box to the anchor of highest shape IoU and move each anchor to the
median shape of its boxes, until no assignment changes. Point `detector.cfg` at the written cfg
to train with the new anchors; the prediction convs are re-initialised for the study's classes
anyway, so transfer is unaffected.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from kitti_pipeline.core.files import write_json, write_text
from kitti_pipeline.core.params import DetectorParams, load_params
from kitti_pipeline.detect.darknet import parse_cfg
from kitti_pipeline.detect.data import load_split


def shape_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of box shapes and anchors placed on a common centre: (N, 2), (K, 2) -> (N, K)."""
    inter = np.minimum(wh[:, None], anchors[None]).prod(-1)
    return inter / (wh.prod(-1)[:, None] + anchors.prod(-1)[None] - inter)


def kmeans_anchors(wh: np.ndarray, k: int, max_iter: int = 300) -> np.ndarray:
    """k anchors (K, 2) for box shapes `wh` (N, 2) by k-means with 1 - IoU distance, by area.

    Raises:
        ValueError: when there are fewer distinct shapes than anchors.
    """
    wh = np.asarray(wh, dtype=float)
    shapes = len(np.unique(wh, axis=0))
    if shapes < k:
        raise ValueError(f"{len(wh)} boxes of {shapes} shapes: too few for {k} anchors")
    by_area = wh[np.argsort(wh.prod(1), kind="stable")]
    anchors = by_area[((np.arange(k) + 0.5) * len(wh) / k).astype(int)]
    assigned = None
    for _ in range(max_iter):
        nearest = shape_iou(wh, anchors).argmax(1)
        if assigned is not None and (nearest == assigned).all():
            break
        assigned = nearest
        for c in range(k):
            if (assigned == c).any():  # an anchor no box chose stays where it is
                anchors[c] = np.median(wh[assigned == c], axis=0)
    return anchors[np.argsort(anchors.prod(1), kind="stable")]


def anchor_fit(wh: np.ndarray, anchors: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Mean best shape IoU of the boxes, and the share whose best reaches `threshold`."""
    best = shape_iou(np.asarray(wh, dtype=float), np.asarray(anchors, dtype=float)).max(1)
    return {
        "mean_best_iou": float(best.mean()),
        "best_possible_recall": float((best >= threshold).mean()),
    }


def cfg_anchors(cfg_text: str, source: str = "<cfg>") -> np.ndarray:
    """The anchors (K, 2) of a cfg's [yolo] blocks (every block lists all of them)."""
    lists = [b.options["anchors"] for b in parse_cfg(source, cfg_text) if b.type == "yolo"]
    if not lists or len(set(lists)) != 1:
        raise ValueError(f"{source}: expected every [yolo] block to list the same anchors")
    values = [float(v) for v in lists[0].split(",")]
    return np.array(values).reshape(-1, 2)


def with_anchors(cfg_text: str, anchors: np.ndarray) -> str:
    """`cfg_text` with every [yolo] block's `anchors=` line set to `anchors` (rounded to pixels)."""
    listed = ",  ".join(f"{round(w)},{round(h)}" for w, h in anchors)
    out, in_yolo = [], False
    for line in cfg_text.splitlines(keepends=True):
        header = line.strip()
        if header.startswith("["):
            in_yolo = header == "[yolo]"
        if in_yolo and re.match(r"\s*anchors\s*=", line):
            line = f"anchors={listed}\n"
        out.append(line)
    return "".join(out)


def training_shapes(
    frames: str | Path, split: str | Path, classes: tuple[str, ...], img_size: int | tuple[int, int]
) -> np.ndarray:
    """(width, height) of every training box of `classes`, letterboxed to `img_size`: (N, 2)."""
    train = load_split(frames, split, "train", classes, img_size)
    rows = [t[t[:, 0] >= 0, 1:] for t in train.targets]  # DontCare regions are not boxes
    boxes = np.concatenate([r.numpy() for r in rows]) if rows else np.zeros((0, 4))
    return boxes[:, 2:] - boxes[:, :2]


def write_anchors(
    frames: str | Path,
    split: str | Path,
    out: str | Path,
    report_path: str | Path | None = None,
    params: str | Path = "params.yaml",
    threshold: float = 0.5,
) -> None:
    """`kitti-anchors`: write `detector.cfg` with the dataset's anchors to `out`, and the report
    of both anchor sets to `report_path` (default: `out` as .json)."""
    det = load_params(params).detector
    report, cfg_text = anchor_report(frames, split, det, threshold)
    write_text(out, with_anchors(cfg_text, report["dataset_anchors"]["anchors"]))
    write_json(report_path or Path(out).with_suffix(".json"), report)
    print(f"wrote {out}: anchors {report['dataset_anchors']['anchors']}")


def anchor_report(
    frames: str | Path, split: str | Path, det: DetectorParams, threshold: float = 0.5
) -> tuple[dict, str]:
    """The cfg's anchors and the dataset's (k-means, rounded to pixels), each with its fit to
    the training boxes at `det.img_size`, and the text of `det.cfg`. Prints both fits."""
    wh = training_shapes(frames, split, det.classes, det.img_size)
    cfg_text = Path(det.cfg).read_text()
    current = cfg_anchors(cfg_text, det.cfg)
    new = np.round(kmeans_anchors(wh, len(current)))
    report = {
        "cfg": det.cfg,
        "img_size": det.img_size,
        "classes": list(det.classes),
        "boxes": len(wh),
        "threshold": threshold,
        "cfg_anchors": {"anchors": current.tolist(), **anchor_fit(wh, current, threshold)},
        "dataset_anchors": {"anchors": new.tolist(), **anchor_fit(wh, new, threshold)},
    }
    for name in ("cfg_anchors", "dataset_anchors"):
        fit = report[name]
        print(
            f"{name}: mean best IoU {fit['mean_best_iou']:.3f}, best possible recall "
            f"{fit['best_possible_recall']:.3f} (IoU >= {threshold}) over {len(wh)} boxes"
        )
    return report, cfg_text
