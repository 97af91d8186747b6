"""Training and evaluation loops for the crop classifiers.

Speed comes from not redoing work: crops are decoded once into a uint8 tensor that lives on the
training device, flips happen there, and in the frozen regime the backbone's features, which
cannot change, are computed once (for each crop and its mirror image) and only the head is trained
on them. On CUDA the forward pass runs in autocast (bfloat16, or float16 with a gradient scaler on
GPUs without bfloat16) with channels_last tensors; on the CPU it stays float32, channels_last for
the architectures where that was measured to pay (`models.CPU_CHANNELS_LAST`).

Reproducibility: batch order and flips come from a generator seeded by (seed, epoch), and the
global RNG state (dropout) travels in the checkpoint, so a resumed run continues exactly where
an uninterrupted one would be.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image
from rich.progress import Progress
from torch import nn

from kitti_pipeline.classify.model_files import load_init
from kitti_pipeline.classify.models import (
    backbone,
    build_classifier,
    count_parameters,
    head,
    load_backbone,
    random_backbone,
    set_train_mode,
    to_device,
    trainable_parameters,
)
from kitti_pipeline.core.device import autocast, compute_type, describe_device, grad_scaler
from kitti_pipeline.core.distributed import SINGLE, World
from kitti_pipeline.core.files import sha256_file
from kitti_pipeline.core.params import CONTROL, ClassifierTrainParams, params_to_dict
from kitti_pipeline.core.resumable import Resumable, epoch_generator, tensor_digest
from kitti_pipeline.core.schedule import schedule_factor
from kitti_pipeline.core.version import code_hash, code_version
from kitti_pipeline.data.splits import read_crop_split

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_BATCH = 256


@dataclass(frozen=True)
class FitConfig:
    """What `fit` needs from the training params."""

    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    augment: tuple[str, ...]
    cache_frozen_features: bool
    amp: bool
    schedule: str = "constant"
    balance: str = "none"
    label_smoothing: float = 0.0


def load_crops(crops_dir: str | Path, rows: list[dict], classes: tuple[str, ...]):
    """Decode crops once.

    Args:
        crops_dir: The crop stage's folder.
        rows: Manifest rows (`crop`, `class`) to load.
        classes: Class names in id order.

    Returns:
        images (N, 3, S, S) uint8 and labels (N,) int64.
    """
    if not rows:
        raise ValueError(f"no crops to load from {crops_dir}")
    arrays = []
    for r in rows:
        with Image.open(Path(crops_dir) / r["crop"]) as image:
            arrays.append(np.asarray(image.convert("RGB")))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([classes.index(r["class"]) for r in rows], dtype=torch.int64)
    return images, labels


def normalise_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (B, 3, H, W) with ImageNet mean and std. The input is
    copied, never changed, whatever its dtype."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    x = images.to(torch.float32, copy=True).div_(255).sub_(mean).div_(std)
    if images.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


# The `crop` augmentation's share of the crop's area, and the `colour` one's factor range.
CROP_AREA = (0.64, 1.0)
COLOUR_RANGE = 0.3


def class_weights(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """n / (K * count) per class (scikit-learn's "balanced"); an absent class weighs 0."""
    counts = torch.bincount(labels.cpu(), minlength=classes).double()
    weights = torch.where(counts > 0, len(labels) / (classes * counts.clamp(min=1)), 0.0)
    return weights.float()


def epoch_order(labels: torch.Tensor, balance: str, generator: torch.Generator) -> torch.Tensor:
    """The crops an epoch visits, in order: a permutation, or with `balance: sampler` as many
    draws with replacement, each class drawn as often as any other on average."""
    n = len(labels)
    if balance != "sampler":
        return torch.randperm(n, generator=generator)
    per_crop = class_weights(labels, int(labels.max()) + 1)[labels.cpu()].double()
    return torch.multinomial(per_crop, n, replacement=True, generator=generator)


def draw_jitter(n: int, augment: tuple[str, ...], generator: torch.Generator) -> dict:
    """Each crop's `crop` box (area share, x and y of its corner as shares of the room left) and
    `colour` factors (brightness, contrast, saturation) for one epoch, drawn after the flips."""
    out = {}
    if "crop" in augment:
        low, high = CROP_AREA
        area = low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)
        out["crop"] = torch.stack([area.sqrt(), *torch.rand(2, n, generator=generator)], 1)
    if "colour" in augment:
        out["colour"] = 1 + COLOUR_RANGE * (2 * torch.rand(n, 3, generator=generator) - 1)
    return out


def jitter_images(images: torch.Tensor, jitter: dict, index: torch.Tensor) -> torch.Tensor:
    """uint8 crops with their drawn `crop` and `colour` jitter (`draw_jitter`), through
    torchvision's functional transforms, one crop at a time."""
    if not jitter:
        return images
    size = images.shape[-1]
    out = []
    for image, i in zip(images, index.tolist(), strict=True):
        if "crop" in jitter:
            side_share, x, y = jitter["crop"][i].tolist()
            side = max(1, round(size * side_share))
            top, left = round(y * (size - side)), round(x * (size - side))
            image = TF.resized_crop(image, top, left, side, side, [size, size], antialias=True)
        if "colour" in jitter:
            brightness, contrast, saturation = jitter["colour"][i].tolist()
            image = TF.adjust_brightness(image, brightness)
            image = TF.adjust_contrast(image, contrast)
            image = TF.adjust_saturation(image, saturation)
        out.append(image)
    return torch.stack(out)


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    raise ValueError(f"Invalid optimizer {name!r}: expected 'adam' or 'sgd'")


@torch.no_grad()
def extract_features(model: nn.Module, images: torch.Tensor, amp: bool = False) -> torch.Tensor:
    """Backbone features of uint8 images, in eval mode: (N, 3, H, W) -> (N, F) float32."""
    net = backbone(model)
    was_training = [m.training for m in net.modules()]
    net.eval()
    out = []
    for start in range(0, len(images), EVAL_BATCH):
        with autocast(images.device, amp):
            out.append(net(normalise_images(images[start : start + EVAL_BATCH])).float())
    for m, mode in zip(net.modules(), was_training, strict=True):
        m.training = mode
    return torch.cat(out)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, amp: bool = False) -> torch.Tensor:
    """Logits for uint8 images in eval mode: (N, 3, H, W) -> (N, C) float32."""
    model.eval()
    out = []
    for start in range(0, len(images), EVAL_BATCH):
        with autocast(images.device, amp):
            out.append(model(normalise_images(images[start : start + EVAL_BATCH])).float())
    return torch.cat(out)


def fit(
    model: nn.Module,
    regime: str,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    cfg: FitConfig,
    seed: int,
    resume: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    description: str = "train",
    world: World = SINGLE,
) -> list[dict]:
    """Train `model` in `regime` for `cfg.epochs`, validating after each epoch.

    Args:
        model: The classifier, already on its device, with its new head.
        regime: `scratch`, `frozen` or `finetune`.
        train, val: (uint8 images, labels) on the model's device.
        cfg: Optimizer, learning rate, batch size, epochs, augmentation, speed options.
        seed: Fixes batch order and flips of every epoch.
        resume: A checkpoint from `on_epoch` to continue from, or None.
        on_epoch: Called after each epoch with a checkpoint dict (model, optimizer, RNG state,
            epoch, history); the caller saves it.
        description: Label of the progress bar.
        world: The data-parallel processes (`kitti_pipeline.core.distributed`); each trains on its
            slice of every batch. Only rank 0 shows progress; `on_epoch` runs on every rank.

    Returns:
        One dict per epoch: epoch, train_loss, train_acc, val_loss, val_acc.

    Raises:
        FloatingPointError: when a loss is not finite.
    """
    params = trainable_parameters(model, regime)
    optimizer = make_optimizer(cfg.optimizer, params, cfg.lr)
    device = train[0].device
    scaler = grad_scaler(device, cfg.amp)
    history, start = [], 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        if resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        torch.set_rng_state(resume["rng"])
        if "cuda_rng" in resume and torch.cuda.is_available():
            torch.cuda.set_rng_state(resume["cuda_rng"])
        history, start = list(resume["history"]), resume["epoch"] + 1

    flip = "flip" in cfg.augment
    # The frozen backbone is a fixed function: its features of each crop and of its mirror
    # image are all a flip-augmented head ever sees, unless crops or colours are jittered.
    cached = regime == "frozen" and cfg.cache_frozen_features and set(cfg.augment) <= {"flip"}
    if cached:
        feats = extract_features(model, train[0], cfg.amp)
        feats_flipped = extract_features(model, train[0].flip(-1), cfg.amp) if flip else None
        val_feats = extract_features(model, val[0], cfg.amp)

    # DDP all-reduces the gradients of whichever module the forward pass goes through.
    net = world.wrap(head(model) if cached else model)
    n = len(train[1])
    loss_weights = None
    if cfg.balance == "loss":
        classes = [m for m in head(model).modules() if isinstance(m, nn.Linear)][-1].out_features
        loss_weights = class_weights(train[1], classes).to(device)
    with Progress(transient=True, disable=not world.main) as progress:
        for epoch in range(start, cfg.epochs + 1):
            task = progress.add_task(f"{description} epoch {epoch}/{cfg.epochs}", total=n)
            generator = epoch_generator(seed, epoch)
            # Drawn on the CPU (the same on every device), moved once: the steps then index on
            # the device and never wait for it. Sums stay there until the epoch ends.
            order = epoch_order(train[1], cfg.balance, generator).to(device)
            flips = (torch.rand(n, generator=generator) < 0.5).to(device) if flip else None
            jitter = draw_jitter(n, cfg.augment, generator)
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * schedule_factor(cfg.schedule, (epoch - 1) / cfg.epochs)
            set_train_mode(model, regime)
            total_loss = torch.zeros((), dtype=torch.float64, device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            for batch in order.split(cfg.batch_size):
                mine, weight = world.shard(batch)
                labels = train[1][mine]
                with autocast(device, cfg.amp):
                    if cached:
                        x = feats[mine]
                        if flips is not None:
                            x = torch.where(flips[mine, None], feats_flipped[mine], x)
                        logits = net(x)
                    else:
                        images = train[0][mine]
                        if flips is not None:
                            mask = flips[mine].view(-1, 1, 1, 1)
                            images = torch.where(mask, images.flip(-1), images)
                        images = jitter_images(images, jitter, mine)
                        logits = net(normalise_images(images))
                    loss = F.cross_entropy(
                        logits.float(),
                        labels,
                        weight=loss_weights,
                        label_smoothing=cfg.label_smoothing,
                    )
                    loss = loss * weight
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                # In float64, in the order Python floats would add them.
                total_loss += loss.detach().double() * len(batch) / world.size
                if weight > 0:
                    correct += (logits.argmax(1) == labels).sum()
                progress.advance(task, len(batch))
            if not torch.isfinite(total_loss):
                raise FloatingPointError(
                    f"{description}: loss is {total_loss.item()} at epoch {epoch}; "
                    f"lower the learning rate (now {cfg.lr})"
                )
            total_loss, correct = world.sum(total_loss.item()), world.sum(int(correct))

            if cached:
                model.eval()
                with torch.no_grad(), autocast(device, cfg.amp):
                    val_logits = head(model)(val_feats).float()
            else:
                val_logits = predict(model, val[0], cfg.amp)
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": total_loss / n,
                    "train_acc": correct / n,
                    "val_loss": F.cross_entropy(val_logits, val[1]).item(),
                    "val_acc": (val_logits.argmax(1) == val[1]).float().mean().item(),
                }
            )
            progress.remove_task(task)
            last = history[-1]
            if world.main:
                progress.console.print(
                    f"{description} epoch {epoch}/{cfg.epochs}: train loss "
                    f"{last['train_loss']:.4f} acc {last['train_acc']:.3f}, "
                    f"val loss {last['val_loss']:.4f} acc {last['val_acc']:.3f}"
                )
            if on_epoch is not None:
                on_epoch(
                    {
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scaler": scaler.state_dict(),
                        "rng": torch.get_rng_state(),
                        **(
                            {"cuda_rng": torch.cuda.get_rng_state()}
                            if device.type == "cuda"
                            else {}
                        ),
                        "history": history,
                    }
                )
    return history


def fit_lpft(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    probe: FitConfig,
    finetune: FitConfig,
    seed: int,
    resume: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    description: str = "train",
    world: World = SINGLE,
) -> list[dict]:
    """Linear probe, then fine-tune (Kumar et al., ICLR 2022): `probe.epochs` of the frozen
    regime (the head alone, on the frozen features), then `finetune.epochs` of every layer
    with a fresh optimizer, usually at a lower rate. The fine-tuning starts from a head that
    already fits the features, so its first steps do not distort them to fit a random one.

    Args:
        probe, finetune: The two phases' settings.
        resume: A state from `on_epoch`; it says its phase, and a resumed run continues there.
        Others: as `fit`.

    Returns:
        `fit`'s rows of both phases, the epochs counted on through the second.
    """
    if resume is None or resume["phase"] == "probe":
        save = None if on_epoch is None else (lambda state: on_epoch({**state, "phase": "probe"}))
        probe_history = fit(
            model, "frozen", train, val, probe, seed, resume, save, f"{description} probe", world
        )
        resume = None
    else:
        probe_history = resume["probe_history"]

    def save_finetune(state: dict) -> None:
        on_epoch({**state, "phase": "finetune", "probe_history": probe_history})

    history = fit(
        model,
        "finetune",
        train,
        val,
        finetune,
        seed,
        resume,
        None if on_epoch is None else save_finetune,
        description,
        world,
    )
    return probe_history + [{**row, "epoch": row["epoch"] + probe.epochs} for row in history]


def train_classifier(
    arch: str,
    regime: str,
    seed: int,
    crops: str | Path,
    split: str | Path,
    init: str | Path | int | None,
    checkpoint: str | Path,
    classes: tuple[str, ...],
    cfg: ClassifierTrainParams,
    world: World = SINGLE,
    device: torch.device | None = None,
) -> tuple[nn.Module, dict]:
    """One (architecture, regime, seed) run of the classifier study, resumed when it can be.

    The checkpoint is saved after every epoch and resumed from when the run's params, split,
    crop pixels, starting weights, library code and process count are those it was saved under.

    Args:
        arch, regime, seed: The run; `regime` is one of `ARMS`: a regime, or the control
            (`frozen_random`), which trains as `frozen` does; `lpft` trains the head for
            `head_epochs`, then every layer for `epochs` at `finetune_lr` (`fit_lpft`).
        crops, split: The crop stage's folder and the split CSV.
        init: The init-weights file of `arch` (frozen and finetune; unread by `scratch`), or,
            for the control, the seed its random backbone is drawn from.
        checkpoint: The run's checkpoint file.
        classes: Class names in id order.
        cfg: The training params.
        world: The data-parallel processes (`core.distributed`).
        device: Where to train (default: the CPU).

    Returns:
        The trained model (on `device`) and its record for `save_classifier`: the run, classes,
        crop size, parameter counts, per-epoch history, seconds, device, params and code version.
    """
    device = device or torch.device("cpu")
    run = f"{arch}-{regime}-s{seed}"
    if world.main:
        print(f"{run}: training on {describe_device(device)}, {world.size} process(es)")
    rows = read_crop_split(split)

    def crops_of(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = [r for r in rows if r["split"] == name]
        return tuple(t.to(device) for t in load_crops(crops, chosen, classes))

    train, val = crops_of("train"), crops_of("val")
    if regime == CONTROL:
        if not isinstance(init, int):
            raise ValueError(f"{run}: the control needs the seed of its random backbone")
        backbone_state = random_backbone(arch, len(classes), init)
        init_key = origin = f"random weights, seed {init}"
    elif regime != "scratch":
        if init is None:
            raise ValueError(f"{run}: the {regime} regime needs an init-weights file")
        backbone_state, init_key = load_init(init, arch)["state_dict"], sha256_file(init)
        origin = str(init)
    # The head is drawn from the run's seed whatever the backbone.
    torch.manual_seed(seed)
    model = build_classifier(arch, len(classes))
    if regime != "scratch":
        load_backbone(model, arch, backbone_state, origin)
    to_device(model, arch, device)

    key = {
        "run": run,
        "train": params_to_dict(cfg),
        "classes": list(classes),
        "split": sha256_file(split),
        # The pixels themselves: a new crop size or resize mode leaves split.csv as it was.
        "crops": tensor_digest(*train, *val),
        "code": code_hash(__name__),  # the library code this run executes, no more
        "init": init_key if regime != "scratch" else None,
        "processes": world.size,
    }
    version = code_version()
    resumable = Resumable(Path(checkpoint), key, version, writer=world.main)
    resume = resumable.load()
    if resume is not None:
        print(f"{run}: resuming after epoch {resume['epoch']}")
    fit_cfg = FitConfig(
        cfg.optimizer,
        cfg.lr,
        cfg.batch_size,
        cfg.epochs_of("frozen" if regime == "lpft" else regime),
        cfg.augment,
        cfg.cache_frozen_features,
        cfg.amp,
        cfg.schedule,
        cfg.balance,
        cfg.label_smoothing,
    )
    # Training time, the epochs before an interruption included: saved with every state.
    before = resume.get("train_seconds", 0.0) if resume is not None else 0.0
    began = time.perf_counter()

    def save(state: dict) -> None:
        resumable.save({**state, "train_seconds": before + time.perf_counter() - began})

    on_epoch = save if world.main else None
    if regime == "lpft":
        finetune_lr = cfg.lr if cfg.finetune_lr is None else cfg.finetune_lr
        finetune_cfg = replace(fit_cfg, epochs=cfg.epochs, lr=finetune_lr)
        history = fit_lpft(
            model, train, val, fit_cfg, finetune_cfg, seed, resume, on_epoch, run, world
        )
    else:
        fit_regime = "frozen" if regime == CONTROL else regime
        history = fit(model, fit_regime, train, val, fit_cfg, seed, resume, on_epoch, run, world)
    seconds = before + time.perf_counter() - began
    trainable, total = count_parameters(model)
    if world.main:
        print(
            f"{run}: {seconds:.1f}s, val acc {history[-1]['val_acc']:.3f}, "
            f"trainable {trainable:,} of {total:,} parameters"
        )
    return model, {
        "arch": arch,
        "regime": regime,
        "seed": seed,
        "classes": list(classes),
        "image_size": train[0].shape[-1],
        "trainable_params": trainable,
        "total_params": total,
        "history": history,
        "train_seconds": seconds,
        "device": str(device),
        "autocast": compute_type(device, cfg.amp),
        "processes": world.size,
        "params": params_to_dict(cfg),
        "code_version": version,
    }
