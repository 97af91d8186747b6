"""One run of the detector study: its model, starting weights and resumable state.

The run builds the network from the cfg, loads the transfer weights, and trains through
`detect.train.fit_detector`, saving a resumable state at every evaluation; a rerun resumes from
it when nothing the training depends on has changed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from kitti_pipeline.core.device import compute_type, describe_device
from kitti_pipeline.core.distributed import SINGLE, World
from kitti_pipeline.core.files import sha256_file
from kitti_pipeline.core.params import DETECTOR_RUNS, DetectorParams, params_to_dict
from kitti_pipeline.core.resumable import Resumable, tensor_digest
from kitti_pipeline.core.version import code_hash, code_version
from kitti_pipeline.detect.darknet import (
    Darknet,
    build_darknet,
    init_prediction_biases,
    transfer_weights,
)
from kitti_pipeline.detect.data import load_split
from kitti_pipeline.detect.model_files import STATE_FILE, best_row, epoch_checkpoint
from kitti_pipeline.detect.predict import CPU_BF16
from kitti_pipeline.detect.train import fit_detector


def train_detector(
    run: str,
    seed: int,
    frames: str | Path,
    split: str | Path,
    init: str | Path | None,
    init_info: str | Path | None,
    checkpoints: str | Path,
    det: DetectorParams,
    world: World = SINGLE,
    device: torch.device | None = None,
    cfg_path: str | Path | None = None,
) -> tuple[Darknet, dict, dict]:
    """One run of the detector study, resumed when it can be.

    `scratch` starts from random weights, the other runs from the init-weights file (every
    layer but the prediction convs, unless `head_classes` carries those too), and each trains
    what `detect.regimes` says. At every evaluation the resumable state (weights, optimizer,
    history and the best epoch's weights) is saved as `checkpoints/state.pt`, and with
    `keep_checkpoints` the epoch's weights beside it; a rerun resumes when the run's params,
    frames, starting weights, the library code it executes (`core.version.code_hash`) and
    process count are those it was saved under.

    Args:
        run: One of `DETECTOR_RUNS`.
        seed: Draws the weights that are not loaded (all of them for scratch) and the batches.
        frames, split: The frames folder and the frame split CSV.
        init, init_info: The init stage's `.weights` file and metrics JSON (transfer only).
        checkpoints: The run's checkpoint folder.
        det: The detector params.
        world: The data-parallel processes (`core.distributed`).
        device: Where to train (default: the CPU).
        cfg_path: The Darknet cfg to build (default `det.cfg`): the `detector_anchors` stage's,
            with the anchors `det.anchors` chooses.

    Returns:
        The model (weights of the last epoch), the best evaluation's `{"epoch", "model"}` and
        the run's record, for `save_best_and_last`.
    """
    if run not in DETECTOR_RUNS:
        raise ValueError(f"Invalid run {run!r}: expected one of {DETECTOR_RUNS}")
    if run != "scratch" and (init is None or init_info is None):
        raise ValueError(f"the {run} run needs the init stage's weights and metrics files")
    device = device or torch.device("cpu")
    name = f"{run}-s{seed}"
    if world.main:
        print(f"{name}: training on {describe_device(device)}, {world.size} process(es)")
    cfg = det.train
    train, val = (
        load_split(frames, split, name, det.classes, det.img_size, det.letterbox_fill).to(device)
        for name in ("train", "val")
    )
    cfg_path = det.cfg if cfg_path is None else cfg_path
    torch.manual_seed(seed)
    model = build_darknet(cfg_path, len(det.classes))
    init_prediction_biases(model)
    if run != "scratch":
        info = json.loads(Path(init_info).read_text())
        head = info.get("head_classes")
        if run == "zeroshot" and head is None:
            raise ValueError(
                "the zeroshot run needs detector.init.head_classes: without the file's rows for "
                "the detector's classes its prediction convs are random"
            )
        loaded = transfer_weights(
            model,
            init,
            cfg_path,
            info["file_classes"],
            info["file_convolutions"],
            None if head is None else tuple(head),
        )
        print(
            f"transfer: loaded {loaded['loaded']} convolutions from {init}; re-initialised the "
            f"prediction convs {loaded['reinitialised']}, carried {loaded['carried_head']}"
        )
    model.to(device)

    # The params training depends on: the NMS of the val AP that picks the best epoch, but not
    # the confidence threshold, which only evaluation reads; whether every evaluated epoch's
    # weights are kept changes nothing that is trained.
    train_params = params_to_dict(cfg)
    del train_params["keep_checkpoints"]
    trained_under = {
        "classes": list(det.classes),
        "cfg": str(cfg_path),
        "cfg_sha256": sha256_file(cfg_path),  # the network and its anchors, not only the path
        "img_size": det.img_size,
        "letterbox_fill": det.letterbox_fill,
        "train": train_params,
        "nms_iou": det.evaluate.nms_iou,
    }
    key = {
        "run": run,
        "seed": seed,
        "detector": trained_under,
        # The letterboxed pixels and boxes themselves, not the paths they were read from.
        "frames": tensor_digest(train.images, *train.targets, val.images, *val.targets),
        "code": code_hash(__name__),  # the library code this run executes, no more
        "init": sha256_file(init) if run != "scratch" else None,
        "processes": world.size,
    }
    version = code_version()
    checkpoints = Path(checkpoints)
    resumable = Resumable(checkpoints / STATE_FILE, key, version, checkpoints, world.main)
    resume = resumable.load()
    if resume is not None:
        print(f"{name}: resuming after epoch {resume['epoch']}")
    if world.main:
        checkpoints.mkdir(parents=True, exist_ok=True)

    # Training time, the epochs before an interruption included: saved with every state.
    before = resume.get("train_seconds", 0.0) if resume is not None else 0.0
    began = time.perf_counter()

    def save_evaluated(state: dict) -> None:
        # The epoch's weights first: a saved state never names weights that are not there.
        if cfg.keep_checkpoints:
            weights = {"epoch": state["epoch"], "model": state["model"]}
            resumable.save(weights, epoch_checkpoint(state["epoch"]))
        resumable.save({**state, "train_seconds": before + time.perf_counter() - began})

    history, best = fit_detector(
        model,
        train,
        val,
        cfg,
        det.evaluate.nms_iou,
        resume,
        on_eval=save_evaluated if world.main else None,
        description=name,
        world=world,
        seed=seed,
        fill=det.letterbox_fill,
        run=run,
    )
    seconds = before + time.perf_counter() - began
    if not world.main:  # rank 0 alone evaluates and writes
        return model, best, {}
    print(
        f"{name}: {seconds:.1f}s on {len(train.stems)} frames; best val AP50 "
        f"{best_row(history)['AP50']:.3f} at epoch {best['epoch']}, "
        f"last {history[-1]['AP50']:.3f}"
    )
    return (
        model,
        best,
        {
            "run": run,
            "seed": seed,
            "classes": list(det.classes),
            "img_size": det.img_size,
            "letterbox_fill": det.letterbox_fill,
            "history": history,
            "train_frames": len(train.stems),
            "train_seconds": seconds,
            "device": str(device),
            "autocast": compute_type(device, cfg.amp, cpu_bf16=CPU_BF16),
            "processes": world.size,
            "params": trained_under,
            "code_version": version,
        },
    )
