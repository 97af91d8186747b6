"""Stage `train_classifier`: one (architecture, regime, seed) run of the classifier study.

Checkpoints after every epoch; a rerun after an interruption resumes from the checkpoint when
the run's params, data, starting weights and library code are unchanged. Started by
`torchrun --nproc-per-node=N`, it trains data-parallel (see `kitti_pipeline.distributed`).
"""

import argparse
import time
from pathlib import Path

import torch

from kitti_pipeline.classifiers import build_classifier, count_parameters, load_backbone
from kitti_pipeline.distributed import close_world, init_world
from kitti_pipeline.engine import FitConfig, fit, load_crops
from kitti_pipeline.files import atomic_path, read_csv, sha256_file, write_csv
from kitti_pipeline.params import load_params, params_to_dict
from kitti_pipeline.provenance import code_version, source_hash
from kitti_pipeline.weights import load_init

HISTORY_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--arch", required=True)
    parser.add_argument("--regime", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--crops", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--init", required=True, help="init-weights file (unused by scratch)")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--history", required=True, help="per-epoch CSV (a DVC plot)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    classes, cfg = params.data.classes, params.classifier.train
    world, device = init_world(cfg.device)
    run = f"{args.arch}-{args.regime}-s{args.seed}"

    rows = read_csv(args.split)
    train = [t.to(device) for t in load_crops(args.crops, _rows(rows, "train"), classes)]
    val = [t.to(device) for t in load_crops(args.crops, _rows(rows, "val"), classes)]
    torch.manual_seed(args.seed)
    model = build_classifier(args.arch, len(classes))
    if args.regime != "scratch":
        load_backbone(model, args.arch, load_init(args.init, args.arch)["state_dict"], args.init)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)

    key = {
        "run": run,
        "train": params_to_dict(cfg),
        "classes": list(classes),
        "split": sha256_file(args.split),
        "source": source_hash(),
        "init": sha256_file(args.init) if args.regime != "scratch" else None,
        "processes": world.size,
    }
    version = code_version()
    resume = None
    if Path(args.checkpoint).exists():
        saved = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        if saved.get("key") == key:
            resume = saved
            print(f"{run}: resuming after epoch {saved['epoch']}")

    def save_checkpoint(state):
        with atomic_path(args.checkpoint) as tmp:
            torch.save({**state, "key": key, "code_version": version}, tmp)

    fit_cfg = FitConfig(
        cfg.optimizer,
        cfg.lr,
        cfg.batch_size,
        cfg.epochs,
        cfg.augment,
        cfg.cache_frozen_features,
        cfg.amp,
    )
    began = time.perf_counter()
    history = fit(
        model,
        args.regime,
        tuple(train),
        tuple(val),
        fit_cfg,
        args.seed,
        resume,
        save_checkpoint if world.main else None,
        description=run,
        world=world,
    )
    seconds = time.perf_counter() - began
    close_world(world)
    if not world.main:
        return
    trainable, total = count_parameters(model)
    with atomic_path(args.model) as tmp:
        torch.save(
            {
                "arch": args.arch,
                "regime": args.regime,
                "seed": args.seed,
                "classes": list(classes),
                "state_dict": model.state_dict(),
                "trainable_params": trainable,
                "total_params": total,
                "history": history,
                "train_seconds": seconds,
                "device": str(device),
                "processes": world.size,
                "params": params_to_dict(cfg),
                "code_version": version,
            },
            tmp,
        )
    write_csv(args.history, history, HISTORY_FIELDS)
    last = history[-1]
    print(
        f"{run}: {seconds:.1f}s, val acc {last['val_acc']:.3f}, "
        f"trainable {trainable:,} of {total:,} parameters"
    )


def _rows(rows, split):
    return [r for r in rows if r["split"] == split]


if __name__ == "__main__":
    main()
