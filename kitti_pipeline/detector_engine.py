"""Training and evaluation loops for the YOLOv3 detector.

Frames are decoded and letterboxed once into a uint8 tensor (N, 3, S, S) on the training device,
with their boxes in letterboxed pixels; horizontal flips happen there per batch, boxes flipped
with them, and the optional affine and colour jitter (transforms v2) per frame. The learning rate
warms up linearly over the first `warmup_steps` steps, as Darknet's `burn_in` does, and a loss
that is not finite stops the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import Progress
from torchvision import tv_tensors
from torchvision.transforms import v2

from kitti_pipeline.darknet import Darknet, YoloLayer, build_darknet
from kitti_pipeline.detection_data import augmentation, letterbox, load_frame, unletterbox
from kitti_pipeline.detection_metrics import detection_summary
from kitti_pipeline.distributed import SINGLE, World
from kitti_pipeline.engine import autocast, epoch_generator
from kitti_pipeline.files import read_csv
from kitti_pipeline.labels import read_classes
from kitti_pipeline.params import DetectorTrainParams
from kitti_pipeline.splits import frames_by_split
from kitti_pipeline.yolo import Scale, detect, scales_of, yolo_loss


@dataclass
class DetectionSet:
    images: torch.Tensor  # (N, 3, S, S) uint8, letterboxed
    targets: list[torch.Tensor]  # per frame (M, 5): class, x1, y1, x2, y2 in letterboxed pixels
    stems: list[str]
    letterboxes: list[tuple[float, float, float, float]]  # per frame (sx, sy, left, top)
    sizes: list[tuple[int, int]]  # per frame original (width, height)

    def to(self, device) -> DetectionSet:
        return DetectionSet(
            self.images.to(device),
            [t.to(device) for t in self.targets],
            self.stems,
            self.letterboxes,
            self.sizes,
        )

    def select(self, index: slice) -> DetectionSet:
        """The frames `index` (a slice) of this set."""
        return DetectionSet(
            self.images[index],
            self.targets[index],
            self.stems[index],
            self.letterboxes[index],
            self.sizes[index],
        )

    def to_frame(self, index: int, rows: torch.Tensor) -> torch.Tensor:
        """Rows `x1, y1, x2, y2, ...` of frame `index` from letterboxed to original pixels."""
        out = rows.clone()
        out[:, :4] = unletterbox(rows[:, :4], self.letterboxes[index], *self.sizes[index])
        return out


def load_detection_set(
    frames: str | Path,
    stems: list[str],
    num_classes: int,
    keep: tuple[int, ...],
    img_size: int,
) -> DetectionSet:
    """Letterbox the frames `stems` of a frames folder, keeping the classes `keep`."""
    frames = Path(frames)
    images, targets, letterboxes, sizes = [], [], [], []
    for stem in stems:
        image_path = next(p for p in (frames / "images").glob(f"{stem}.*"))
        image, boxes, classes = load_frame(
            image_path, frames / "labels" / f"{stem}.txt", num_classes, keep
        )
        sizes.append((image.shape[-1], image.shape[-2]))
        image, boxes, transform = letterbox(image, boxes, img_size)
        images.append(image)
        targets.append(torch.cat([classes[:, None].float(), boxes], 1))
        letterboxes.append(transform)
    if not images:
        return DetectionSet(
            torch.zeros(0, 3, img_size, img_size, dtype=torch.uint8), [], [], [], []
        )
    return DetectionSet(torch.stack(images), targets, list(stems), letterboxes, sizes)


def load_split(
    frames: str | Path, split_path: str | Path, split: str, classes: tuple[str, ...], img_size: int
) -> DetectionSet:
    """The frames of one split, letterboxed, keeping `classes` (numbered 0.. in that order).

    Args:
        frames: A frames folder (`images/`, `labels/`, `classes.txt`).
        split_path: The crop split file; a frame's split is its crops' split.
        split: `train`, `val` or `test`.
        classes: Names from the folder's `classes.txt` the detector learns.
        img_size: The letterboxed side.

    Raises:
        ValueError: naming a class that `classes.txt` does not list.
    """
    frames = Path(frames)
    names = read_classes(frames / "classes.txt")
    for name in classes:
        if name not in names:
            raise ValueError(f"detector class {name!r} is not in {frames / 'classes.txt'}: {names}")
    stems = sorted(p.stem for p in (frames / "images").iterdir())
    chosen = frames_by_split(read_csv(split_path), stems)[split]
    keep = tuple(names.index(name) for name in classes)
    return load_detection_set(frames, chosen, len(names), keep, img_size)


def flip_batch(images: torch.Tensor, targets: list[torch.Tensor], flips: torch.Tensor):
    """Mirror the images where `flips` is set, and their boxes: x -> S - x."""
    size = images.shape[-1]
    images = torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
    out = []
    for t, flip in zip(targets, flips.tolist(), strict=True):
        if flip:
            t = t.clone()
            t[:, [1, 3]] = size - t[:, [3, 1]]
        out.append(t)
    return images, out


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
    ignore_iou: float = 0.5,
    transform: v2.Transform | None = None,
    on_batch: Callable[[int], None] | None = None,
    world: World = SINGLE,
) -> tuple[dict[str, float], int]:
    """One pass over `data`.

    Args:
        augment: Mirror a random half of the frames.
        transform: Per-frame affine/colour jitter from `detection_data.augmentation`, or None.
        on_batch: Called with the number of frames after each batch (a progress bar).
        world: The data-parallel processes; each trains on its slice of every batch, and
            `model` is then wrapped in DistributedDataParallel.

    Returns:
        The mean of each loss term per batch, and the global step count after the epoch.
    """
    model.train()
    device = data.images.device
    n = len(data.images)
    order = torch.randperm(n, generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if augment else torch.zeros(n, dtype=bool)
    sums: dict[str, float] = {}
    batches = 0
    for batch in order.split(batch_size):
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / max(warmup_steps, 1))
        mine, weight = world.shard(batch)
        images, targets = flip_batch(
            data.images[mine], [data.targets[i] for i in mine], flips[mine].to(device)
        )
        if transform is not None:
            images, targets = jitter_batch(images, targets, transform)
        with autocast(device, amp):
            raws = model(images.float() / 255)
        terms = yolo_loss(
            [r.float() for r in raws],
            scales,
            targets,
            num_classes,
            ignore_iou=ignore_iou,
            box_loss=box_loss,
        )
        # The loss is a mean over this slice; weighted, the processes average to the batch mean.
        terms = {name: value * weight for name, value in terms.items()}
        if not torch.isfinite(terms["total"]):
            raise FloatingPointError(
                f"detector loss is {terms['total'].item()} at step {step}; "
                f"lower the learning rate (now {lr})"
            )
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.item()
        batches += 1
        step += 1
        if on_batch is not None:
            on_batch(len(batch))
    return {name: world.sum(value) / world.size / batches for name, value in sums.items()}, step


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


@torch.no_grad()
def predict_detections(
    model: torch.nn.Module,
    data: DetectionSet,
    scales: list[Scale],
    conf_threshold: float,
    nms_iou: float,
    batch_size: int = 16,
    num_classes: int | None = None,
    amp: bool = False,
) -> tuple[list[torch.Tensor], float | None]:
    """Detections per frame in letterboxed pixels, and the mean loss when `num_classes` is given.

    Returns:
        Per frame (N, 6): x1, y1, x2, y2, score, class, best first, on the CPU; and the loss
        per frame (None without `num_classes`).
    """
    model.eval()
    out, loss = [], 0.0
    for start in range(0, len(data.images), batch_size):
        images = data.images[start : start + batch_size]
        with autocast(images.device, amp):
            raws = [r.float() for r in model(images.float() / 255)]
        if num_classes is not None:
            targets = data.targets[start : start + batch_size]
            loss += yolo_loss(raws, scales, targets, num_classes)["total"].item() * len(images)
        out += [d.cpu() for d in detect(raws, scales, conf_threshold, nms_iou)]
    return out, (loss / max(len(data.images), 1) if num_classes is not None else None)


def evaluate_detector(
    model: torch.nn.Module,
    data: DetectionSet,
    scales: list[Scale],
    conf_threshold: float,
    nms_iou: float,
    class_id: int = 0,
) -> dict[str, float]:
    """Precision, recall, F1 at `conf_threshold` and the APs, for `class_id`, on `data`.

    AP ranks every detection above 0.001, as AP needs the whole precision-recall curve.
    """
    detections, _ = predict_detections(model, data, scales, 0.001, nms_iou)
    return class_summary(detections, data, class_id, conf_threshold)


def class_summary(
    detections: list[torch.Tensor], data: DetectionSet, class_id: int, conf_threshold: float
) -> dict[str, float]:
    """`detection_summary` of one class, from detections of every class."""
    truths = [t[t[:, 0] == class_id, 1:].cpu() for t in data.targets]
    mine = [d[d[:, 5] == class_id] for d in detections]
    return detection_summary(mine, truths, conf_threshold)


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
    on_epoch: Callable[[dict], None] | None = None,
    description: str = "detector",
    world: World = SINGLE,
) -> list[dict]:
    """Train `model` for `cfg.epochs`, evaluating on `val` every `cfg.eval_every` epochs.

    Args:
        model: The detector, on the device of `train` and `val`.
        train, val: Letterboxed frames on that device.
        cfg: Optimizer, schedule, augmentation and loss settings.
        conf_threshold, nms_iou: Post-processing for the val precision, recall and F1.
        resume: A state from `on_epoch` to continue from, or None.
        on_eval: Called after each evaluation with the model's weights, the epoch and the
            history row; the caller saves the every-N-epochs checkpoint.
        on_epoch: Called after every epoch with the state to resume from.
        description: Label of the progress bar.
        world: The data-parallel processes (`kitti_pipeline.distributed`). Every process
            evaluates; only rank 0 shows progress.

    Returns:
        One row per evaluation: epoch, the mean train loss terms of that epoch, the val loss,
        and val precision, recall, AP50 and F1 (the mean over classes when there are several).

    Raises:
        FloatingPointError: when a loss is not finite.
    """
    num_classes = model_classes(model)
    scales = scales_of(model)
    optimizer = make_detector_optimizer(model, cfg)
    transform = (
        augmentation(False, cfg.scale, cfg.translate, cfg.colour)
        if cfg.scale or cfg.translate or cfg.colour
        else None
    )
    history, start, step = [], 1, 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        history, start, step = list(resume["history"]), resume["epoch"] + 1, resume["step"]

    device, n = train.images.device, len(train.images)
    net = world.wrap(model)
    with Progress(transient=True, disable=not world.main) as progress:
        for epoch in range(start, cfg.epochs + 1):
            task = progress.add_task(f"{description} epoch {epoch}/{cfg.epochs}", total=n)
            torch.manual_seed(cfg.seed * 100_003 + epoch)  # the jitter's random draws
            losses, step = train_one_epoch(
                net,
                train,
                optimizer,
                scales,
                num_classes,
                cfg.batch_size,
                epoch_generator(cfg.seed, epoch),
                step,
                cfg.lr,
                cfg.warmup_steps,
                augment=cfg.flip,
                amp=cfg.amp and device.type == "cuda",
                box_loss=cfg.box_loss,
                ignore_iou=cfg.ignore_iou,
                transform=transform,
                on_batch=lambda k, task=task: progress.advance(task, k),
                world=world,
            )
            progress.remove_task(task)
            line = f"{description} epoch {epoch}/{cfg.epochs}: loss {losses['total']:.3f}"
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                detections, val_loss = predict_detections(
                    model, val, scales, 0.001, nms_iou, num_classes=num_classes, amp=cfg.amp
                )
                summaries = [
                    class_summary(detections, val, k, conf_threshold) for k in range(num_classes)
                ]
                row = {
                    "epoch": epoch,
                    **{f"train_{k}": v for k, v in losses.items()},
                    "val_loss": val_loss,
                    **{
                        k: sum(c[k] for c in summaries) / num_classes
                        for k in ("precision", "recall", "AP50", "F1")
                    },
                }
                history.append(row)
                line += f", val loss {val_loss:.3f} AP50 {row['AP50']:.3f} F1 {row['F1']:.3f}"
                if on_eval is not None:
                    on_eval({"epoch": epoch, "model": model.state_dict(), "row": row})
            if world.main:
                progress.console.print(line)
            if on_epoch is not None:
                on_epoch(
                    {
                        "epoch": epoch,
                        "step": step,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "history": history,
                    }
                )
    return history


def model_classes(model: Darknet) -> int:
    """The number of classes of a Darknet model's [yolo] layers."""
    return next(layer.num_classes for layer in model.layers if isinstance(layer, YoloLayer))


def save_detector(path: str | Path, model: Darknet, cfg_text: str, info: dict) -> None:
    """Write a detector file: the cfg text, the weights and where they came from."""
    torch.save({"cfg": cfg_text, "state_dict": model.state_dict(), **info}, path)


def load_detector(path: str | Path, device: torch.device | str = "cpu") -> tuple[Darknet, dict]:
    """A detector written by `save_detector`, in eval mode, and its file's other entries."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or "cfg" not in data or "state_dict" not in data:
        raise ValueError(f"{path}: not a detector file (needs 'cfg' and 'state_dict')")
    model = build_darknet(path, len(data["classes"]), text=data.pop("cfg"))
    model.load_state_dict(data.pop("state_dict"))
    return model.to(device).eval(), data
