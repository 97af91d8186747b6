"""Stage `train_detector`: one run of the detector study, `transfer` or `scratch`.

`transfer` starts from the init-weights file (every layer but the prediction convs), `scratch`
from random weights. Every `eval_every` epochs and at the last, the run is evaluated on the val
frames and its weights saved in the checkpoints folder; the resumable state is saved after every
epoch, and a rerun after an interruption continues from it when nothing it depends on changed.
Started by `torchrun --nproc-per-node=N`, it trains data-parallel (`kitti_pipeline.distributed`).
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from kitti_pipeline.darknet import build_darknet, init_prediction_biases, transfer_weights
from kitti_pipeline.detector_engine import fit_detector, load_split, save_detector
from kitti_pipeline.distributed import close_world, init_world
from kitti_pipeline.files import atomic_dir, atomic_path, sha256_file, write_csv
from kitti_pipeline.params import load_params, params_to_dict
from kitti_pipeline.provenance import code_version, source_hash


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--run-name", dest="run", required=True, choices=["transfer", "scratch"]
    )  # not `--run`: torchrun would take it for its own `--run-path`
    parser.add_argument("--frames", required=True, help="frames folder (images/, labels/)")
    parser.add_argument("--split", required=True, help="the crop split, read per frame")
    parser.add_argument("--init", required=True, help="init .weights file (unused by scratch)")
    parser.add_argument("--init-info", required=True, help="the init stage's metrics JSON")
    parser.add_argument("--checkpoints", required=True, help="folder of checkpoints")
    parser.add_argument("--model", required=True, help="folder to write best.pt and last.pt")
    parser.add_argument("--history", required=True, help="CSV of val metrics (a DVC plot)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    det, cfg = params.detector, params.detector.train
    world, device = init_world(cfg.device)
    train, val = (
        load_split(args.frames, args.split, name, det.classes, det.img_size).to(device)
        for name in ("train", "val")
    )
    torch.manual_seed(cfg.seed)
    model = build_darknet(det.cfg, len(det.classes))
    init_prediction_biases(model)
    if args.run == "transfer":
        info = json.loads(Path(args.init_info).read_text())
        loaded = transfer_weights(
            model, args.init, det.cfg, info["file_classes"], info["file_convolutions"]
        )
        print(
            f"transfer: loaded {loaded['loaded']} convolutions from {args.init}; "
            f"re-initialised the prediction convs {loaded['reinitialised']}"
        )
    model.to(device)

    key = {
        "run": args.run,
        "detector": {k: v for k, v in params_to_dict(det).items() if k != "evaluate"},
        "frames": args.frames,
        "split": sha256_file(args.split),
        "source": source_hash(),
        "init": sha256_file(args.init) if args.run == "transfer" else None,
        "processes": world.size,
    }
    checkpoints = Path(args.checkpoints)
    last_path = checkpoints / "last.pt"
    resume = None
    if last_path.exists():
        saved = torch.load(last_path, map_location="cpu", weights_only=True)
        if saved.get("key") == key:
            resume = saved
            print(f"{args.run}: resuming after epoch {saved['epoch']}")
    if world.main and resume is None and checkpoints.exists():
        shutil.rmtree(checkpoints)  # another configuration's checkpoints
    checkpoints.mkdir(parents=True, exist_ok=True)
    version = code_version()

    def save_evaluated(state):
        with atomic_path(checkpoints / f"epoch_{state['epoch']:04d}.pt") as tmp:
            torch.save({**state, "key": key}, tmp)

    def save_last(state):
        with atomic_path(last_path) as tmp:
            torch.save({**state, "key": key, "code_version": version}, tmp)

    began = time.perf_counter()
    history = fit_detector(
        model,
        train,
        val,
        cfg,
        det.evaluate.conf_threshold,
        det.evaluate.nms_iou,
        resume,
        on_eval=save_evaluated if world.main else None,
        on_epoch=save_last if world.main else None,
        description=args.run,
        world=world,
    )
    seconds = time.perf_counter() - began
    close_world(world)
    if not world.main:
        return
    best = max(history, key=lambda row: (row["AP50"], -row["epoch"]))
    cfg_text = Path(det.cfg).read_text()
    common = {
        "run": args.run,
        "classes": list(det.classes),
        "img_size": det.img_size,
        "history": history,
        "train_frames": len(train.stems),
        "train_seconds": seconds,
        "device": str(device),
        "processes": world.size,
        "params": params_to_dict(det),
        "code_version": version,
    }
    with atomic_dir(args.model) as out:
        for name, row in (("best", best), ("last", history[-1])):
            saved = torch.load(
                checkpoints / f"epoch_{row['epoch']:04d}.pt", map_location="cpu", weights_only=True
            )
            model.load_state_dict(saved["model"])
            save_detector(
                out / f"{name}.pt", model, cfg_text, {**common, "epoch": row["epoch"], "val": row}
            )
    write_csv(args.history, history, list(history[0]))
    print(
        f"{args.run}: {seconds:.1f}s on {len(train.stems)} frames; best val AP50 "
        f"{best['AP50']:.3f} at epoch {best['epoch']}, last {history[-1]['AP50']:.3f}"
    )


if __name__ == "__main__":
    main()
