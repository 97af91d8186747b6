"""Training loops for the YOLOv3 detector, and one run of the detector study.

Frames are decoded and letterboxed once into a uint8 tensor (N, 3, S, S) on the training device,
with their boxes in letterboxed pixels; horizontal flips happen there per batch, boxes flipped
with them, and the optional affine and colour jitter (transforms v2) per frame. The learning rate
burns in as Darknet's does (`burn_in_lr`), and a loss that is not finite stops the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.progress import Progress
from torchvision import tv_tensors
from torchvision.transforms import v2

from kitti_pipeline.core.device import autocast, compute_type, describe_device, grad_scaler
from kitti_pipeline.core.distributed import SINGLE, World
from kitti_pipeline.core.files import sha256_file
from kitti_pipeline.core.params import (
    DETECTOR_RUNS,
    DetectorParams,
    DetectorTrainParams,
    params_to_dict,
)
from kitti_pipeline.core.resumable import Resumable, epoch_generator, tensor_digest
from kitti_pipeline.core.version import code_version, library_hash
from kitti_pipeline.detect.darknet import (
    Darknet,
    build_darknet,
    init_prediction_biases,
    model_classes,
    transfer_weights,
)
from kitti_pipeline.detect.data import DARKNET_FILL, DetectionSet, augmentation, load_split
from kitti_pipeline.detect.metrics import class_summary
from kitti_pipeline.detect.model_files import (
    STATE_FILE,
    best_row,
    epoch_checkpoint,
    load_epoch_weights,
)
from kitti_pipeline.detect.predict import CPU_BF16, as_input, predict_detections
from kitti_pipeline.detect.yolo import Scale, scales_of, yolo_loss

VAL_METRICS = ("precision", "recall", "AP50", "F1")
# Steps between the checks that the loss is finite: each check waits for the device, so the loop
# runs ahead of it in between, and a run that diverges stops within this many steps.
FINITE_CHECK_EVERY = 10


def flip_batch(images: torch.Tensor, targets: list[torch.Tensor], flips: torch.Tensor):
    """Mirror the images where `flips` (a CPU tensor) is set, and their boxes: x -> S - x."""
    size = images.shape[-1]
    mirrored = flips.to(images.device, non_blocking=True).view(-1, 1, 1, 1)
    images = torch.where(mirrored, images.flip(-1), images)
    out = []
    for t, flip in zip(targets, flips.tolist(), strict=True):
        if flip:
            t = t.clone()
            t[:, [1, 3]] = size - t[:, [3, 1]]
        out.append(t)
    return images, out


def burn_in_lr(lr: float, step: int, steps: int, power: float) -> float:
    """The learning rate of training step `step` (0-based): Darknet's `get_current_rate`.

    Darknet counts the batch after adding it, so its k-th update (k = step + 1) takes
    lr * (k / burn_in) ^ power while k < burn_in, and lr from then on.
    """
    done = step + 1
    return lr * (done / steps) ** power if done < steps else lr


def train_one_epoch(
    model: torch.nn.Module,
    data: DetectionSet,
    optimizer: torch.optim.Optimizer,
    scales: list[Scale],
    num_classes: int,
    batch_size: int,
    generator: torch.Generator,
    step: int,
    lr: float,
    warmup_steps: int,
    augment: bool = True,
    amp: bool = False,
    box_loss: str = "mse",
    ignore_iou: float | None = None,
    transform: v2.Transform | None = None,
    on_batch: Callable[[int], None] | None = None,
    world: World = SINGLE,
    scaler: torch.amp.GradScaler | None = None,
    warmup_power: float = 1.0,
    small_box_scale: bool = False,
) -> tuple[dict[str, float], int]:
    """One pass over `data`.

    Args:
        warmup_steps, warmup_power: The learning rate's burn-in (`burn_in_lr`).
        ignore_iou: The loss's; None: each scale's own (the cfg's `ignore_thresh`).
        small_box_scale: The loss's 2 - w * h weight on box terms.
        augment: Mirror a random half of the frames.
        transform: Per-frame affine/colour jitter from `detect.data.augmentation`, or None.
        on_batch: Called with the number of frames after each batch (a progress bar).
        world: The data-parallel processes; each trains on its slice of every batch, and
            `model` is then wrapped in DistributedDataParallel.
        scaler: The gradient scaler of float16 autocast (`core.device.grad_scaler`); None: off.

    Returns:
        The mean of each loss term per batch, and the global step count after the epoch.
    """
    model.train()
    device = data.images.device
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    n = len(data.images)
    order = torch.randperm(n, generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if augment else torch.zeros(n, dtype=bool)
    sums: dict[str, torch.Tensor] = {}
    batches, checked = 0, step
    for batch in order.split(batch_size):
        for group in optimizer.param_groups:
            group["lr"] = burn_in_lr(lr, step, warmup_steps, warmup_power)
        mine, weight = world.shard(batch)
        images, targets = flip_batch(
            data.images[mine], [data.targets[i] for i in mine], flips[mine]
        )
        if transform is not None:
            images, targets = jitter_batch(images, targets, transform)
        with autocast(device, amp, cpu_bf16=CPU_BF16):
            raws = model(as_input(images))
        terms = yolo_loss(
            [r.float() for r in raws],
            scales,
            targets,
            num_classes,
            ignore_iou=ignore_iou,
            box_loss=box_loss,
            dont_care=data.dont_care,
            small_box_scale=small_box_scale,
        )
        # The loss is a mean over this slice; weighted, the processes average to the batch mean.
        terms = {name: value * weight for name, value in terms.items()}
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(terms["total"]).backward()
        scaler.step(optimizer)
        scaler.update()
        for name, value in terms.items():  # in float64, as Python floats would add them
            sums[name] = sums.get(name, 0.0) + value.detach().double()
        batches += 1
        step += 1
        if step % FINITE_CHECK_EVERY == 0:
            check_finite(sums["total"], checked, step, lr)
            checked = step
        if on_batch is not None:
            on_batch(len(batch))
    check_finite(sums["total"], checked, step, lr)
    means = {name: world.sum(value.item()) / world.size / batches for name, value in sums.items()}
    return means, step


def check_finite(total: torch.Tensor, first: int, last: int, lr: float) -> None:
    """Raise when the running loss sum is not finite: some step in [first, last) diverged.

    Raises:
        FloatingPointError: naming the steps and the learning rate.
    """
    if not torch.isfinite(total):
        raise FloatingPointError(
            f"detector loss is {total.item()} within steps {first} to {last - 1}; "
            f"lower the learning rate (now {lr})"
        )


def jitter_batch(
    images: torch.Tensor, targets: list[torch.Tensor], transform: v2.Transform
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Apply `transform` frame by frame, on the CPU; boxes pushed out of the frame go."""
    size = images.shape[-2:]
    out_images, out_targets = [], []
    for image, target in zip(images.cpu(), targets, strict=True):
        boxes = tv_tensors.BoundingBoxes(target[:, 1:].cpu(), format="XYXY", canvas_size=size)
        image, boxes, classes = transform(tv_tensors.Image(image), boxes, target[:, 0].cpu())
        out_images.append(image.as_subclass(torch.Tensor))
        out_targets.append(
            torch.cat([classes[:, None], boxes.as_subclass(torch.Tensor)], 1).to(target.device)
        )
    return torch.stack(out_images).to(images.device), out_targets


def make_detector_optimizer(model: torch.nn.Module, cfg: DetectorTrainParams):
    """Adam or SGD with momentum; weight decay on conv weights only, as Darknet decays them."""
    decay = [p for name, p in model.named_parameters() if name.endswith("conv.weight")]
    rest = [p for name, p in model.named_parameters() if not name.endswith("conv.weight")]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest}]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    raise ValueError(f"Invalid optimizer {cfg.optimizer!r}: expected 'adam' or 'sgd'")


def fit_detector(
    model: Darknet,
    train: DetectionSet,
    val: DetectionSet,
    cfg: DetectorTrainParams,
    conf_threshold: float,
    nms_iou: float,
    resume: dict | None = None,
    on_eval: Callable[[dict], None] | None = None,
    description: str = "detector",
    world: World = SINGLE,
    seed: int = 0,
    fill: int = DARKNET_FILL,
) -> tuple[list[dict], dict]:
    """Train `model` for `cfg.epochs`, evaluating on `val` every `cfg.eval_every` epochs.

    Args:
        model: The detector, on the device of `train` and `val`.
        train, val: Letterboxed frames on that device.
        cfg: Optimizer, schedule, augmentation and loss settings.
        conf_threshold, nms_iou: Post-processing for the val precision, recall and F1.
        resume: A state from `on_eval` to continue from, or None.
        on_eval: Called after each evaluation with the state to resume from: epoch, step,
            weights, optimizer, history, post-processing and the best epoch's weights.
        description: Label of the progress bar.
        world: The data-parallel processes (`kitti_pipeline.core.distributed`). Every process
            evaluates; only rank 0 shows progress.
        seed: Draws each epoch's batches and augmentation.
        fill: The grey that the affine jitter fills with, as the letterbox pads.

    Returns:
        One row per evaluation (epoch, the mean train loss terms of that epoch, the val loss,
        and val precision, recall, AP50 and F1: the mean over classes when there are several),
        and the best evaluation's `{"epoch", "model"}` (its weights, on the CPU). The first
        row is epoch 0, the starting weights, with no train loss (None).

    Raises:
        FloatingPointError: when a loss is not finite.
    """
    num_classes = model_classes(model)
    scales = scales_of(model)
    optimizer = make_detector_optimizer(model, cfg)
    transform = (
        augmentation(False, cfg.scale, cfg.translate, cfg.colour, fill)
        if cfg.scale or cfg.translate or cfg.colour
        else None
    )
    device, n = train.images.device, len(train.images)
    scaler = grad_scaler(device, cfg.amp)
    if device.type == "cuda":  # the input shape never changes: let cuDNN pick its fastest kernels
        torch.backends.cudnn.benchmark = True
    history, best, start, step = [], None, 1, 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        if resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        history, best = list(resume["history"]), resume["best"]
        start, step = resume["epoch"] + 1, resume["step"]

    warmup = model.burn_in if cfg.warmup_steps == "cfg" else cfg.warmup_steps
    ignore_iou = None if cfg.ignore_iou == "cfg" else cfg.ignore_iou
    net = world.wrap(torch.compile(model) if cfg.compile else model)

    def evaluate(epoch: int, losses: dict[str, float]) -> dict:
        val_loss, metrics = validate(model, val, conf_threshold, nms_iou, cfg.amp)
        row = {
            "epoch": epoch,
            **{f"train_{k}": v for k, v in losses.items()},
            "val_loss": val_loss,
            **metrics,
        }
        history.append(row)
        nonlocal best
        if best_row(history)["epoch"] == epoch:
            best = {"epoch": epoch, "model": cpu_copy(model.state_dict())}
        if on_eval is not None:
            on_eval(
                {
                    "epoch": epoch,
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "history": history,
                    "evaluate": {"conf_threshold": conf_threshold, "nms_iou": nms_iou},
                    "best": best,
                }
            )
        return row

    if resume is None:  # where the run starts from: the starting weights, before any step
        terms = ("giou",) if cfg.box_loss == "giou" else ("xy", "wh")
        row = evaluate(0, dict.fromkeys((*terms, "obj", "noobj", "cls", "total")))
        if world.main:
            print(f"{description} epoch 0: val loss {row['val_loss']:.3f} AP50 {row['AP50']:.3f}")
    with Progress(transient=True, disable=not world.main) as progress:
        for epoch in range(start, cfg.epochs + 1):
            task = progress.add_task(f"{description} epoch {epoch}/{cfg.epochs}", total=n)
            torch.manual_seed(seed * 100_003 + epoch)  # the jitter's random draws
            losses, step = train_one_epoch(
                net,
                train,
                optimizer,
                scales,
                num_classes,
                cfg.batch_size,
                epoch_generator(seed, epoch),
                step,
                cfg.lr,
                warmup,
                augment=cfg.flip,
                amp=cfg.amp,
                box_loss=cfg.box_loss,
                ignore_iou=ignore_iou,
                transform=transform,
                on_batch=lambda k, task=task: progress.advance(task, k),
                world=world,
                scaler=scaler,
                warmup_power=cfg.warmup_power,
                small_box_scale=cfg.small_box_scale,
            )
            progress.remove_task(task)
            line = f"{description} epoch {epoch}/{cfg.epochs}: loss {losses['total']:.3f}"
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                row = evaluate(epoch, losses)
                line += (
                    f", val loss {row['val_loss']:.3f} AP50 {row['AP50']:.3f} F1 {row['F1']:.3f}"
                )
            if world.main:
                progress.console.print(line)
    return history, best


def cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of a state dict on the CPU, unaffected by further training."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def validate(
    model: Darknet, val: DetectionSet, conf_threshold: float, nms_iou: float, amp: bool = False
) -> tuple[float, dict[str, float]]:
    """The val loss, and the mean over classes of precision, recall, AP@0.5 and F1.

    AP ranks every detection above 0.001; precision, recall and F1 count those above
    `conf_threshold`. Only these metrics depend on the post-processing, never the loss.
    """
    num_classes = model_classes(model)
    detections, val_loss = predict_detections(
        model, val, scales_of(model), 0.001, nms_iou, num_classes=num_classes, amp=amp
    )
    summaries = [class_summary(detections, val, k, conf_threshold) for k in range(num_classes)]
    return val_loss, {k: sum(c[k] for c in summaries) / num_classes for k in VAL_METRICS}


def revalidate(
    model: Darknet,
    history: list[dict],
    checkpoints: Path,
    val: DetectionSet,
    conf_threshold: float,
    nms_iou: float,
    amp: bool = False,
) -> tuple[list[dict], dict]:
    """`history` with each row's val metrics recomputed from its epoch's kept weights.

    For a run resumed under other post-processing params: training does not depend on them,
    so this gives the history that a run from scratch under the new params would give.

    Returns:
        The new history and the best evaluation's `{"epoch", "model"}` under it.
    """
    rows = []
    for row in history:
        model.load_state_dict(load_epoch_weights(checkpoints, row["epoch"]))
        _, metrics = validate(model, val, conf_threshold, nms_iou, amp)
        rows.append({**row, **metrics})
    # One epoch's weights in memory at a time: the best's are read again, not all kept.
    epoch = best_row(rows)["epoch"]
    return rows, {"epoch": epoch, "model": load_epoch_weights(checkpoints, epoch)}


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

    `transfer` starts from the init-weights file (every layer but the prediction convs),
    `scratch` from random weights. At every evaluation the resumable state (weights, optimizer,
    history and the best epoch's weights) is saved as `checkpoints/state.pt`, and with
    `keep_checkpoints` the epoch's weights beside it; a rerun resumes when the run's params,
    frames, starting weights, library code and process count are those it was saved under.

    Args:
        run: `transfer` or `scratch`.
        seed: Draws the weights that are not loaded (all of them for scratch) and the batches.
        frames, split: The frames folder and the crop split (read per frame).
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
    if run == "transfer" and (init is None or init_info is None):
        raise ValueError("the transfer run needs the init stage's weights and metrics files")
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
    if run == "transfer":
        info = json.loads(Path(init_info).read_text())
        head = info.get("head_classes")
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

    # The params training depends on. The post-processing is checked apart (`revalidate`), and
    # whether every evaluated epoch's weights are kept changes nothing that is trained.
    train_params = params_to_dict(cfg)
    del train_params["keep_checkpoints"]
    trained_under = {
        "classes": list(det.classes),
        "cfg": str(cfg_path),
        "cfg_sha256": sha256_file(cfg_path),  # the network and its anchors, not only the path
        "img_size": det.img_size,
        "letterbox_fill": det.letterbox_fill,
        "train": train_params,
    }
    evaluate = {"conf_threshold": det.evaluate.conf_threshold, "nms_iou": det.evaluate.nms_iou}
    key = {
        "run": run,
        "seed": seed,
        "detector": trained_under,
        # The letterboxed pixels and boxes themselves, not the paths they were read from.
        "frames": tensor_digest(train.images, *train.targets, val.images, *val.targets),
        "library": library_hash(),
        "init": sha256_file(init) if run == "transfer" else None,
        "processes": world.size,
    }
    version = code_version()
    checkpoints = Path(checkpoints)
    resumable = Resumable(checkpoints / STATE_FILE, key, version, checkpoints, world.main)
    resume = resumable.load()
    if resume is not None and resume["evaluate"] != evaluate:
        resume = redo_evaluations(resume, resumable, model, val, evaluate, cfg.amp)
    if resume is not None:
        print(f"{name}: resuming after epoch {resume['epoch']}")
    if world.main:
        checkpoints.mkdir(parents=True, exist_ok=True)

    def save_evaluated(state: dict) -> None:
        # The epoch's weights first: a saved state never names weights that are not there.
        if cfg.keep_checkpoints:
            weights = {"epoch": state["epoch"], "model": state["model"]}
            resumable.save(weights, epoch_checkpoint(state["epoch"]))
        resumable.save(state)

    began = time.perf_counter()
    history, best = fit_detector(
        model,
        train,
        val,
        cfg,
        det.evaluate.conf_threshold,
        det.evaluate.nms_iou,
        resume,
        on_eval=save_evaluated if world.main else None,
        description=name,
        world=world,
        seed=seed,
        fill=det.letterbox_fill,
    )
    seconds = time.perf_counter() - began
    if world.main:
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
            "params": {**trained_under, "evaluate": evaluate},
            "code_version": version,
        },
    )


def redo_evaluations(
    resume: dict,
    resumable: Resumable,
    model: Darknet,
    val: DetectionSet,
    evaluate: dict,
    amp: bool,
) -> dict | None:
    """A state evaluated under other post-processing, brought up to `evaluate`.

    With every evaluated epoch's weights kept, each evaluation is redone from them; without, the
    val history cannot be redone, so the state is moved aside and the run trains anew.

    Returns:
        The state to resume from, or None.
    """
    folder = resumable.folder
    epochs = [row["epoch"] for row in resume["history"]]
    if not all((folder / epoch_checkpoint(e)).exists() for e in epochs):
        resumable.set_aside(
            f"was evaluated under {resume['evaluate']}, not {evaluate}, and its val history "
            "cannot be redone without every evaluated epoch's weights "
            "(detector.train.keep_checkpoints: true keeps them)"
        )
        return None
    history, best = revalidate(model, resume["history"], folder, val, **evaluate, amp=amp)
    resume = {**resume, "history": history, "best": best, "evaluate": evaluate}
    if resumable.writer:
        resumable.save(resume)
    print(f"{resume['key']['run']}: {len(history)} evaluations redone under {evaluate}")
    return resume
