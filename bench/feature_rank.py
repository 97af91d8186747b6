"""How many directions do the starting weights' features span on the crops?

The linear probe (`probe_init`) standardises each backbone feature and fits a logistic
regression. Features that a ten-class stand-in task has pulled onto about ten directions carry
less for it than random projections do, however well they separate the stand-in's own classes.
For the init file and for random weights (drawn from `classifier.init.seed`) of each
architecture, this prints on the demo's training crops the feature count, the features constant
over every crop, and the spread of the standardised features: the effective rank (the exponent
of the entropy of the normalised squared singular values) and the principal components that
hold 90% of the variance.

    dvc repro init_weights     # the demo's crops, split and init weights
    python bench/feature_rank.py

writes bench/results/feature_rank.json.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml
from timing import write_results

from kitti_pipeline.classify.model_files import load_init
from kitti_pipeline.classify.probe import frozen_backbone
from kitti_pipeline.classify.train import extract_features, load_crops
from kitti_pipeline.core.files import read_csv

ROOT = Path(__file__).resolve().parents[1]


def spread(features: np.ndarray) -> dict:
    """Feature count, constant features, and the effective rank and 90%-variance component
    count of the standardised non-constant features, (N, D) in."""
    std = features.std(0)
    varying = features[:, std > 0]
    z = (varying - varying.mean(0)) / varying.std(0)
    share = np.linalg.svd(z, compute_uv=False) ** 2
    share = share / share.sum()
    nonzero = share[share > 0]
    return {
        "features": int(features.shape[1]),
        "constant": int((std == 0).sum()),
        "effective_rank": float(np.exp(-(nonzero * np.log(nonzero)).sum())),
        "components_for_90pct": int(np.searchsorted(np.cumsum(share), 0.9) + 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="*", default=["resnet18", "mobilenet_v2"])
    parser.add_argument("--out", default=str(ROOT / "bench/results/feature_rank.json"))
    args = parser.parse_args()

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    classes, seed = tuple(raw["data"]["classes"]), raw["classifier"]["init"]["seed"]
    rows = [r for r in read_csv(ROOT / "data/split.csv") if r["split"] == "train"]
    images, _ = load_crops(ROOT / "data/crops", rows, classes)
    results = {}
    for arch in args.archs:
        states = {
            "init": load_init(ROOT / f"models/init/{arch}.pt", arch)["state_dict"],
            "random": None,
        }
        for name, state in states.items():
            model = frozen_backbone(arch, state, len(classes), seed, "cpu", name)
            results.setdefault(arch, {})[name] = spread(extract_features(model, images).numpy())
            row = results[arch][name]
            print(
                f"| {arch} | {name} | {row['features']} | {row['constant']} "
                f"| {row['effective_rank']:.1f} | {row['components_for_90pct']} |"
            )
    write_results(
        args.out,
        torch.device("cpu"),
        crops="train",
        init_source=raw["classifier"]["init"]["source"],
        archs=results,
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
