"""Disk a detector run leaves in the workspace, measured on the files the training code writes.

One epoch of the study's `cfg/yolov3.cfg` (one class, as the study trains it) on two small
generated frames: the weights and optimizer state have the study's sizes whatever the frames,
so the files are those of a study run. Written through the real code (`fit_detector`'s state,
`Resumable.save`, `save_best_and_last`), then measured. The projection for a study run (200
epochs, evaluated every 5) compares the policy before this layout (every evaluated epoch's
weights kept, and a resumable state rewritten after every epoch) with today's default
(`keep_checkpoints: false`: one state rewritten at each evaluation, best and last models).

    python bench/checkpoint_bytes.py [--cfg cfg/yolov3.cfg] [--epochs 200] [--eval-every 5]

Prints the figures, and writes bench/results/checkpoint_bytes.json.
"""

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import torch

from kitti_pipeline.core.params import load_params
from kitti_pipeline.core.resumable import Resumable
from kitti_pipeline.detect.darknet import build_darknet
from kitti_pipeline.detect.model_files import STATE_FILE, epoch_checkpoint, save_best_and_last
from kitti_pipeline.detect.train import fit_detector
from kitti_pipeline.pretrain.coco import make_object_scenes

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cfg", default="cfg/yolov3.cfg")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench/results/checkpoint_bytes.json"))
    args = parser.parse_args()

    data = make_object_scenes(3, 64, seed=0)
    for target in data.targets:
        target[:, 0] = 0  # one class: cars
    train, val = data.select(slice(0, 2)), data.select(slice(2, 3))
    cfg = dataclasses.replace(
        load_params(ROOT / "params.yaml").detector.train, epochs=1, eval_every=1, batch_size=2
    )
    torch.manual_seed(0)
    model = build_darknet(ROOT / args.cfg, 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "checkpoints"
        folder.mkdir()
        resumable = Resumable(folder / STATE_FILE, {"run": "bench"}, "bench", folder)

        def save(state):
            resumable.save({"epoch": state["epoch"], "model": state["model"]}, epoch_checkpoint(1))
            resumable.save(state)

        history, best = fit_detector(model, train, val, cfg, 0.45, on_eval=save)
        record = {"run": "bench", "classes": ["Car"], "img_size": 64, "history": history}
        cfg_text = (ROOT / args.cfg).read_text()
        save_best_and_last(Path(tmp) / "model", model, best, cfg_text, record)
        state = (folder / STATE_FILE).stat().st_size
        weights = (folder / epoch_checkpoint(1)).stat().st_size
        models = sum(p.stat().st_size for p in (Path(tmp) / "model").iterdir())

    evaluations = -(-args.epochs // args.eval_every)
    # Before: a state of weights and optimizer (no best copy) after every epoch, every evaluated
    # epoch's weights kept; the state without a best copy is `state - weights`.
    before_state = state - weights
    result = {
        "cfg": args.cfg,
        "parameters": sum(p.numel() for p in model.parameters()),
        "bytes": {"state_file": state, "weights_file": weights, "best_and_last": models},
        "study_run": {"epochs": args.epochs, "eval_every": args.eval_every},
        "workspace_bytes_per_run": {
            "now": state + models,
            "now_with_keep_checkpoints": state + models + evaluations * weights,
            "before": before_state + evaluations * weights + models,
        },
        "written_bytes_per_run": {
            "now": evaluations * state,
            "before": args.epochs * before_state + evaluations * weights,
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    gb = 1e9
    space, written = result["workspace_bytes_per_run"], result["written_bytes_per_run"]
    print(
        f"{args.cfg}: {result['parameters']:,} parameters; state {state / gb:.3f} GB, weights "
        f"{weights / gb:.3f} GB, best+last {models / gb:.3f} GB"
    )
    print(
        f"per study run in the workspace: {space['now'] / gb:.2f} GB now "
        f"({space['now_with_keep_checkpoints'] / gb:.2f} with keep_checkpoints), "
        f"{space['before'] / gb:.2f} GB before: {space['before'] / space['now']:.1f}x less"
    )
    print(
        f"written per study run: {written['now'] / gb:.1f} GB now, {written['before'] / gb:.1f} "
        f"GB before: {written['before'] / written['now']:.1f}x less"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
