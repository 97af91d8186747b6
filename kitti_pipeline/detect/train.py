"""The detector's training loop: epochs of batches, evaluated on the val frames as it goes.

Frames are decoded and letterboxed once into a uint8 tensor (N, 3, S, S) on the training device,
with their boxes in letterboxed pixels; horizontal flips happen there per batch, boxes flipped
with them, and the optional affine and colour jitter per frame (`detect.augment`). The learning
rate burns in as Darknet's does (`detect.optim`), and a loss that is not finite stops the run.
Every evaluation scores the val frames as `evaluate_detector` scores the test frames
(`predict.score_detections`), and keeps the epoch with the best val AP@0.5.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from rich.progress import Progress
from torchvision.transforms import v2

from kitti_pipeline.core.device import autocast, grad_scaler
from kitti_pipeline.core.distributed import SINGLE, World, sync_batchnorm
from kitti_pipeline.core.params import DetectorTrainParams
from kitti_pipeline.core.resumable import epoch_generator
from kitti_pipeline.detect.augment import augmentation, flip_batch, jitter_batch
from kitti_pipeline.detect.darknet import Darknet, model_classes
from kitti_pipeline.detect.data import DARKNET_FILL, DetectionSet
from kitti_pipeline.detect.matching import rank_matches
from kitti_pipeline.detect.metrics import average_precision
from kitti_pipeline.detect.model_files import best_row
from kitti_pipeline.detect.optim import check_finite, make_detector_optimizer, step_lr
from kitti_pipeline.detect.predict import CPU_BF16, as_input, score_detections
from kitti_pipeline.detect.regimes import freeze, phase_of, set_train_mode, training_phases
from kitti_pipeline.detect.yolo import Scale, scales_of, yolo_loss

# Steps between the checks that the loss is finite: each check waits for the device, so the loop
# runs ahead of it in between, and a run that diverges stops within this many steps.
FINITE_CHECK_EVERY = 10


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
    loss_fn: Callable[..., dict[str, torch.Tensor]] | None = None,
    schedule: str = "constant",
    total_steps: int = 1,
    first_step: int = 0,
    set_mode: Callable[[torch.nn.Module], None] | None = None,
) -> tuple[dict[str, float], int]:
    """One pass over `data`.

    Args:
        warmup_steps, warmup_power: The learning rate's burn-in (`optim.burn_in_lr`).
        schedule, total_steps: Its schedule after the burn-in, over the run's steps
            (`optim.step_lr`).
        first_step: The step the burn-in and schedule count from (a phase's first).
        set_mode: Puts `model` in training mode (default `model.train()`); the frozen regimes
            keep some BatchNorm layers in eval mode (`regimes.set_train_mode`).
        ignore_iou: The loss's; None: each scale's own (the cfg's `ignore_thresh`).
        small_box_scale: The loss's 2 - w * h weight on box terms.
        augment: Mirror a random half of the frames.
        transform: Per-frame affine/colour jitter from `detect.data.augmentation`, or None.
        on_batch: Called with the number of frames after each batch (a progress bar).
        world: The data-parallel processes; each trains on its slice of every batch, and
            `model` is then wrapped in DistributedDataParallel.
        scaler: The gradient scaler of float16 autocast (`core.device.grad_scaler`); None: off.
        loss_fn: `batch_loss`, or the same compiled (`fit_detector`); None: `batch_loss`.

    Returns:
        The mean of each loss term per batch, and the global step count after the epoch.
    """
    loss_fn = loss_fn or batch_loss
    (set_mode or torch.nn.Module.train)(model)
    device = data.images.device
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    n = len(data.images)
    order = torch.randperm(n, generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if augment else torch.zeros(n, dtype=bool)
    sums: dict[str, torch.Tensor] = {}
    batches, checked = 0, step
    for batch in order.split(batch_size):
        for group in optimizer.param_groups:
            group["lr"] = step_lr(
                lr, step - first_step, warmup_steps, warmup_power, schedule, total_steps
            )
        mine, weight = world.shard(batch)
        images, targets = flip_batch(
            data.images[mine], [data.targets[i] for i in mine], flips[mine]
        )
        if transform is not None:
            images, targets = jitter_batch(images, targets, transform)
        terms = loss_fn(
            model,
            images,
            targets,
            scales,
            num_classes,
            amp,
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


def batch_loss(
    model: torch.nn.Module,
    images: torch.Tensor,
    targets: list[torch.Tensor],
    scales: list[Scale],
    num_classes: int,
    amp: bool,
    **options,
) -> dict[str, torch.Tensor]:
    """The loss terms of one batch of uint8 frames: the network (autocast as `amp` asks) and
    `yolo_loss` with `options`. `fit_detector` compiles this whole, loss included: on a GPU a
    small detector's step is bound by kernel launches, and the loss is most of them."""
    with autocast(images.device, amp, cpu_bf16=CPU_BF16):
        raws = model(as_input(images))  # per scale (B, A*(5+C), H, W)
    return yolo_loss([r.float() for r in raws], scales, targets, num_classes, **options)


def compiles_step(cfg: DetectorTrainParams, device: torch.device) -> bool:
    """Whether `cfg.compile` (true, false or auto: on CUDA only) compiles the training step."""
    return cfg.compile is True or (cfg.compile == "auto" and device.type == "cuda")


def fit_detector(
    model: Darknet,
    train: DetectionSet,
    val: DetectionSet,
    cfg: DetectorTrainParams,
    nms_iou: float,
    resume: dict | None = None,
    on_eval: Callable[[dict], None] | None = None,
    description: str = "detector",
    world: World = SINGLE,
    seed: int = 0,
    fill: int = DARKNET_FILL,
    run: str = "transfer",
) -> tuple[list[dict], dict | None]:
    """Train `model` as `run` trains (`detect.regimes`: `cfg.epochs` of every layer, for
    scratch and transfer), evaluating on `val` every `cfg.eval_every` epochs and at the end of
    each phase.

    Args:
        model: The detector, on the device of `train` and `val`.
        train, val: Letterboxed frames on that device.
        cfg: Optimizer, schedule, augmentation and loss settings; `compile` (on CUDA by
            default) compiles `batch_loss` and fuses the optimizer's update.
        nms_iou: The NMS of the val AP@0.5 that picks the best epoch.
        resume: A state from `on_eval` to continue from, or None.
        on_eval: Called after each evaluation with the state to resume from: epoch, step,
            weights, optimizer, history and the best epoch's weights.
        description: Label of the progress bar.
        world: The data-parallel processes (`kitti_pipeline.core.distributed`). BatchNorm then
            takes global-batch statistics (`sync_batchnorm`), and only rank 0 evaluates and
            shows progress.
        seed: Draws each epoch's batches and augmentation.
        fill: The grey that the affine jitter fills with, as the letterbox pads.
        run: One of `DETECTOR_RUNS`: what trains, epoch by epoch (`regimes.training_phases`).

    Returns:
        One row per evaluation (epoch, the mean train loss terms of that epoch, the val loss and
        val AP50: the mean over classes when there are several), and the best evaluation's
        `{"epoch", "model"}` (its weights, on the CPU); on ranks other than 0, `[]` and None.
        The first row is epoch 0, the starting weights, with no train loss (None).

    Raises:
        FloatingPointError: when a loss is not finite.
        ValueError: for a regime with frozen layers on several processes.
    """
    phases = training_phases(run, cfg, model)
    epochs = phases[-1].last if phases else 0
    if world.size > 1 and any(p.frozen for p in phases):
        raise ValueError(f"the {run} regime trains in one process only, not {world.size}")
    num_classes = model_classes(model)
    scales = scales_of(model)
    device, n = train.images.device, len(train.images)
    compiled = compiles_step(cfg, device)
    if world.size > 1:
        model = sync_batchnorm(model)
    optimizer = make_detector_optimizer(model, cfg, fused=compiled)
    transform = (
        augmentation(False, cfg.scale, cfg.translate, cfg.colour, fill)
        if cfg.scale or cfg.translate or cfg.colour
        else None
    )
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
    net = world.wrap(model)  # compiled after the DDP wrap, as PyTorch's DDP notes advise
    loss_fn = torch.compile(batch_loss) if compiled else batch_loss

    def evaluate(epoch: int, losses: dict[str, float]) -> dict:
        val_loss, ap50 = validate(model, val, nms_iou)
        train_terms = {f"train_{k}": v for k, v in losses.items()}
        history.append({"epoch": epoch, **train_terms, "val_loss": val_loss, "AP50": ap50})
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
                    "best": best,
                }
            )
        return history[-1]

    if resume is None and world.main:  # where the run starts from: before any step
        terms = ("giou",) if cfg.box_loss == "giou" else ("xy", "wh")
        row = evaluate(0, dict.fromkeys((*terms, "obj", "noobj", "cls", "total")))
        print(f"{description} epoch 0: val loss {row['val_loss']:.3f} AP50 {row['AP50']:.3f}")
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    freeze_bn = cfg.freeze_bn and run != "scratch"  # random weights have no statistics to keep
    with Progress(transient=True, disable=not world.main) as progress:
        for epoch in range(start, epochs + 1):
            phase = phase_of(phases, epoch)
            freeze(model, phase)
            task = progress.add_task(f"{description} epoch {epoch}/{epochs}", total=n)
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
                phase.lr,
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
                loss_fn=loss_fn,
                schedule=cfg.schedule,
                total_steps=(phase.last - phase.first + 1) * steps_per_epoch,
                first_step=(phase.first - 1) * steps_per_epoch,
                set_mode=lambda net, phase=phase: set_train_mode(net, model, phase, freeze_bn),
            )
            progress.remove_task(task)
            if not world.main:
                continue
            line = f"{description} epoch {epoch}/{epochs}: loss {losses['total']:.3f}"
            if epoch % cfg.eval_every == 0 or epoch == phase.last:
                row = evaluate(epoch, losses)
                line += f", val loss {row['val_loss']:.3f} AP50 {row['AP50']:.3f}"
            progress.console.print(line)
    return history, best


def cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of a state dict on the CPU, unaffected by further training."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def validate(model: Darknet, val: DetectionSet, nms_iou: float) -> tuple[float, float]:
    """The val loss and AP@0.5 (the mean over classes), scored as evaluation scores a checkpoint
    (`predict.score_detections`: float32, BatchNorm folded), whatever the training autocasts."""
    num_classes = model_classes(model)
    detections, val_loss = score_detections(model, val, nms_iou, with_loss=True)
    aps = []
    for k in range(num_classes):
        truths = [t[t[:, 0] == k, 1:].cpu() for t in val.targets]
        aps.append(
            average_precision(rank_matches([d[d[:, 5] == k] for d in detections], truths, 0.5))
        )
    return val_loss, sum(aps) / num_classes
