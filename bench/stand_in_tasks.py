"""Does a stand-in task with more classes make features that a linear probe prefers to random ones?

The ImageNet stand-in's ten classes pull its last features onto about ten directions
(`bench/feature_rank.py`), and a converged linear probe on them does no better than on random
weights' features. This bench pretrains each architecture at the demo's `classifier.init` budget
on three stand-in tasks drawn from the same objects, from each seed s:

- `kinds`, the pipeline's: one object of ten kinds, framed as a crop (10 classes);
- `upside_down`: the same images, half of them turned by 180 degrees, the label the kind and
  whether it is turned (20 classes; turning commutes with the training's mirroring);
- `companion`: an object of one kind with a smaller one of another kind, or none, drawn on it
  (10 x 11 = 110 classes).

For each it reports the pretraining seconds, the held-out accuracy on the task, the linear probe
of `probe_init` on the demo's val crops (never the test crops) against the probe on random
weights drawn from s, with the paired frame-bootstrap interval of `probe_init`, and the spread
of the standardised features on the training crops (`feature_rank.spread`).

    dvc repro split            # the demo's crops and split
    python bench/stand_in_tasks.py --seeds 0 1

writes bench/results/stand_in_tasks.json (or `--out`).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from feature_rank import spread
from timing import write_results

from kitti_pipeline.classify.metrics import confusion_matrix, scores_from_confusion
from kitti_pipeline.classify.models import HEAD_KEYS
from kitti_pipeline.classify.probe import (
    PROBE,
    frozen_backbone,
    paired_difference,
    probe_val_predictions,
)
from kitti_pipeline.classify.train import extract_features, load_crops
from kitti_pipeline.core.device import resolve_device
from kitti_pipeline.core.files import read_csv
from kitti_pipeline.core.params import load_params
from kitti_pipeline.pretrain.imagenet import (
    OBJECTS,
    ObjectTask,
    frame_object,
    place_object,
    pretrain_classifier,
    render_object_image,
)
from kitti_pipeline.pretrain.objects import DRAW, OBJECT_CLASSES, background, object_shape

ROOT = Path(__file__).resolve().parents[1]
KINDS = len(OBJECT_CLASSES)


def render_upside_down(rng: np.random.Generator, size: int, label: int) -> np.ndarray:
    """Labels 0 to 9: the kinds' images; 10 to 19: the same kinds turned by 180 degrees."""
    image = render_object_image(rng, size, label % KINDS)
    return np.ascontiguousarray(image[::-1, ::-1]) if label >= KINDS else image


def render_with_companion(rng: np.random.Generator, size: int, label: int) -> np.ndarray:
    """Label main x 11 + other: an object of kind `main` framed as a crop, with an object of
    kind `other` drawn on it, its longer side 0.3 to 0.5 of the main's (other 10: none)."""
    main, other = divmod(label, KINDS + 1)
    s = size * 2
    image, draw = background(rng, 2 * s)
    x1, y1, w, h = place_object(rng, draw, OBJECT_CLASSES[main], s)
    if other < KINDS:
        name = OBJECT_CLASSES[other]
        cw, ch = object_shape(rng, name, 0.3 * max(w, h), 0.5 * max(w, h))
        cx = x1 + rng.uniform(0, max(w - cw, 0))
        cy = y1 + rng.uniform(0, max(h - ch, 0))
        DRAW[name](draw, rng, cx, cy, cw, ch)
    return frame_object(rng, image, (x1, y1, w, h), size)


TASKS = {
    "kinds": OBJECTS,
    "upside_down": ObjectTask(
        "synthetic objects, upright or upside down",
        OBJECT_CLASSES + tuple(f"{kind} upside down" for kind in OBJECT_CLASSES),
        render_upside_down,
    ),
    "companion": ObjectTask(
        "synthetic objects with a companion",
        tuple(
            f"{main} with {other}"
            for main in OBJECT_CLASSES
            for other in (*OBJECT_CLASSES, "nothing")
        ),
        render_with_companion,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="*", default=["resnet18", "mobilenet_v2"])
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    parser.add_argument("--out", default=str(ROOT / "bench/results/stand_in_tasks.json"))
    args = parser.parse_args()

    params = load_params(ROOT / "params.yaml")
    classes, init = params.data.classes, params.classifier.init
    device = resolve_device(params.classifier.train.device)
    crops, rows = ROOT / "data/crops", read_csv(ROOT / "data/split.csv")
    frames = [r["frame"] for r in rows if r["split"] == "val"]
    train_images, _ = load_crops(crops, [r for r in rows if r["split"] == "train"], classes)
    results = {}
    for arch in args.archs:
        for seed in args.seeds:
            backbones, figures = {}, {}
            for task in args.tasks:
                began = time.perf_counter()
                state, info = pretrain_classifier(
                    arch,
                    init.pretrain_images,
                    init.pretrain_image_size,
                    init.pretrain_epochs,
                    init.pretrain_batch_size,
                    init.pretrain_lr,
                    seed,
                    device,
                    task=TASKS[task],
                )
                backbones[task] = {k: v for k, v in state.items() if k not in HEAD_KEYS[arch]}
                figures[task] = {
                    "classes": len(TASKS[task].classes),
                    "pretrain_seconds": round(time.perf_counter() - began, 1),
                    "held_out_accuracy": info["held_out_accuracy"],
                }
            labels, predicted = probe_val_predictions(
                arch, {**backbones, "random": None}, crops, rows, classes, seed, device
            )
            mca = {
                name: scores_from_confusion(confusion_matrix(labels, p, len(classes)))["mCA"]
                for name, p in predicted.items()
            }
            for task, state in backbones.items():
                model = frozen_backbone(arch, state, len(classes), seed, device, task)
                features = extract_features(model, train_images.to(device)).cpu().numpy()
                figures[task] |= {
                    "probe_val_mCA": mca[task],
                    "probe_minus_random": paired_difference(
                        labels,
                        predicted[task],
                        predicted["random"],
                        frames,
                        len(classes),
                        params.classifier.bootstrap,
                    ),
                    **spread(features),
                }
                row = figures[task]
                cell = row["probe_minus_random"]
                print(
                    f"{arch} seed {seed} {task}: {row['classes']} classes, pretrain "
                    f"{row['pretrain_seconds']:.0f} s, held-out {row['held_out_accuracy']:.3f}, "
                    f"probe {row['probe_val_mCA']:.3f} (random {mca['random']:.3f}, "
                    f"{cell['difference']:+.3f} [{cell['low']:+.3f}, {cell['high']:+.3f}]), "
                    f"effective rank {row['effective_rank']:.1f}"
                )
            figures["random_probe_val_mCA"] = mca["random"]
            results.setdefault(arch, {})[str(seed)] = figures
    write_results(
        args.out,
        torch.device(device),
        probe=PROBE,
        images=init.pretrain_images,
        image_size=init.pretrain_image_size,
        epochs=init.pretrain_epochs,
        seeds=args.seeds,
        archs=results,
    )
    print(
        "| arch | task | classes | held-out acc, by seed | probe val mCA, by seed "
        "| random weights' probe | probe - random [95%], by seed | effective rank, by seed |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for arch, by_seed in results.items():
        runs = list(by_seed.values())
        for task in args.tasks:
            cells = [
                "{difference:+.3f} [{low:+.3f}, {high:+.3f}]".format(
                    **run[task]["probe_minus_random"]
                )
                for run in runs
            ]
            held_out = " / ".join(f"{run[task]['held_out_accuracy']:.3f}" for run in runs)
            probe = " / ".join(f"{run[task]['probe_val_mCA']:.3f}" for run in runs)
            randoms = " / ".join(f"{run['random_probe_val_mCA']:.3f}" for run in runs)
            ranks = " / ".join(f"{run[task]['effective_rank']:.1f}" for run in runs)
            print(
                f"| {arch} | {task} | {runs[0][task]['classes']} | {held_out} | {probe} "
                f"| {randoms} | {' / '.join(cells)} | {ranks} |"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
