"""Detector recipes compared by cross-validation over the train and val frames, never the test
frames: each fold's frames are scored by a model trained on the others, and every evaluated
epoch's out-of-fold detections are pooled into one AP over all of them.

    python bench/detector_recipes.py --workspace DIR --name lr1e-4 --run transfer \\
        --set lr=0.0001 --folds 5

DIR is a workspace of the pipeline (its `params.yaml`, the frames folder it names and
`data/frame_split.csv`, as `dvc repro split` leaves them: the `real` profile's, for real
frames). `--set KEY=VALUE` overrides `detector.train` keys (YAML values), `--size WxH` the input.
Writes bench/results/detector_recipes/<name>.json: per evaluated epoch, the pooled AP@0.5,
AP@[.5:.95] and KITTI's moderate AP40 for cars, each fold's AP@0.5, and the training seconds.
"""

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from timing import write_results

from kitti_pipeline.core.params import load_params
from kitti_pipeline.data.labels import ignored_kitti_types, read_classes, read_kitti_labels
from kitti_pipeline.detect.darknet import build_darknet, init_prediction_biases, transfer_weights
from kitti_pipeline.detect.data import load_detection_set, read_frame_split
from kitti_pipeline.detect.kitti import kitti_level_ap
from kitti_pipeline.detect.matching import rank_matches
from kitti_pipeline.detect.metrics import average_precision, summarise
from kitti_pipeline.detect.predict import in_frame, score_detections
from kitti_pipeline.detect.train import fit_detector
from kitti_pipeline.pretrain.real_weights import KNOWN_FILES, fetch_pretrained

ROOT = Path(__file__).resolve().parents[1]


def folds_of(stems: list[str], folds: int, seed: int) -> list[list[str]]:
    """`stems` dealt into `folds` parts after a seeded shuffle."""
    order = np.random.default_rng(seed).permutation(len(stems))
    return [sorted(stems[i] for i in order[k::folds]) for k in range(folds)]


def pooled_scores(detections: list[torch.Tensor], sets: list, objects: list) -> dict:
    """AP@0.5, AP@[.5:.95] and KITTI moderate over every fold's frames at once."""
    found, truths = [], []
    for data, dets in zip(sets, detections, strict=True):
        for i, d in enumerate(dets):
            found.append(in_frame(data, i, d))
            truths.append(data.to_frame(i, data.targets[i][data.targets[i][:, 0] == 0, 1:]))
    ranked = rank_matches(found, truths)
    summary = summarise(ranked, 0.25)
    moderate = kitti_level_ap(found, [o for part in objects for o in part], "Car", "moderate")
    return {"AP50": summary["AP50"], "AP50_95": summary["AP50_95"], "kitti_moderate": moderate}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--run", default="transfer")
    parser.add_argument("--set", nargs="*", default=[], help="detector.train KEY=VALUE")
    parser.add_argument("--size", help="input WxH (default: the params')")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=str(ROOT / "bench/results/detector_recipes"))
    args = parser.parse_args(argv)

    ws = Path(args.workspace)
    params = load_params(ws / "params.yaml")
    det = params.detector
    overrides = dict(item.split("=", 1) for item in args.set)
    cfg = dataclasses.replace(det.train, **{k: yaml.safe_load(v) for k, v in overrides.items()})
    size = tuple(int(v) for v in args.size.split("x")) if args.size else det.img_size
    frames = ws / params.data.frames
    names = read_classes(frames / "classes.txt")
    keep = tuple(names.index(c) for c in det.classes)
    parts = read_frame_split(ws / "data/frame_split.csv", frames)
    pool = sorted(parts["train"] + parts["val"])
    folds = folds_of(pool, args.folds, args.fold_seed)
    known = KNOWN_FILES["yolov3-tiny.weights"]
    weights, _ = fetch_pretrained(known.name, known.sha256)
    cfg_path = ROOT / det.cfg

    def load(stems):
        return load_detection_set(
            frames,
            stems,
            len(names),
            keep,
            size,
            det.letterbox_fill,
            ignored_kitti_types(det.classes),
        )

    sets, objects, found, per_fold, seconds = [], [], {}, {}, 0.0
    for k, val_stems in enumerate(folds):
        train = load([s for s in pool if s not in val_stems])
        val = load(val_stems)
        sets.append(val)
        objects.append([read_kitti_labels(frames / "label_2" / f"{s}.txt") for s in val_stems])
        torch.manual_seed(args.seed)
        model = build_darknet(cfg_path, len(det.classes))
        init_prediction_biases(model)
        if args.run != "scratch":
            transfer_weights(model, weights, cfg_path, 80, None, det.init.head_classes)

        def on_eval(state, k=k, model=model, val=val):
            detections, _ = score_detections(model, val, det.evaluate.nms_iou)
            found.setdefault(state["epoch"], [None] * len(folds))[k] = detections
            truths = [t[t[:, 0] == 0, 1:] for t in val.targets]
            ap = average_precision(rank_matches(detections, truths, 0.5))
            per_fold.setdefault(state["epoch"], [None] * len(folds))[k] = ap

        began = time.perf_counter()
        fit_detector(
            model,
            train,
            val,
            cfg,
            det.evaluate.nms_iou,
            on_eval=on_eval,
            description=f"{args.name} fold {k}",
            seed=args.seed,
            fill=det.letterbox_fill,
            run=args.run,
        )
        seconds += time.perf_counter() - began
    rows = []
    for epoch in sorted(found):
        row = {
            "epoch": epoch,
            **pooled_scores(found[epoch], sets, objects),
            "fold_AP50": per_fold[epoch],
        }
        rows.append(row)
        print(
            f"{args.name} epoch {epoch}: AP50 {row['AP50']:.3f} AP50_95 {row['AP50_95']:.3f} "
            f"moderate {row['kitti_moderate']:.3f}"
        )
    out = Path(args.out_dir) / f"{args.name}.json"
    write_results(
        out,
        torch.device("cpu"),
        **{
            "command": "python bench/detector_recipes.py "
            + " ".join(
                [
                    f"--name {args.name} --run {args.run}",
                    f"--folds {args.folds}",
                    f"--seed {args.seed}",
                    *(["--size " + args.size] if args.size else []),
                    *(["--set " + " ".join(args.set)] if args.set else []),
                ]
            ),
            "run": args.run,
            "train": dataclasses.asdict(cfg),
            "img_size": list(size) if isinstance(size, tuple) else size,
            "frames": len(pool),
            "folds": args.folds,
            "train_seconds": seconds,
            "threads": torch.get_num_threads(),
            "epochs": rows,
        },
    )


if __name__ == "__main__":
    main()
