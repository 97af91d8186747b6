"""The detector's optimizer, its Darknet learning rate (burn-in, then a schedule), and the
divergence check."""

from __future__ import annotations

import torch

from kitti_pipeline.core.params import DetectorTrainParams
from kitti_pipeline.core.schedule import schedule_factor


def burn_in_lr(lr: float, step: int, steps: int, power: float) -> float:
    """The learning rate of training step `step` (0-based): Darknet's `get_current_rate`.

    Darknet counts the batch after adding it, so its k-th update (k = step + 1) takes
    lr * (k / burn_in) ^ power while k < burn_in, and lr from then on.
    """
    done = step + 1
    return lr * (done / steps) ** power if done < steps else lr


def step_lr(
    lr: float, step: int, warmup: int, power: float, schedule: str = "constant", total: int = 1
) -> float:
    """The learning rate of step `step` of `total`: the burn-in (`burn_in_lr`), then `schedule`
    (`core.schedule`) over the whole run, as Darknet's `get_current_rate` runs its policy once
    the burn-in is over."""
    if step + 1 < warmup:
        return burn_in_lr(lr, step, warmup, power)
    return lr * schedule_factor(schedule, step / total)


def make_detector_optimizer(model: torch.nn.Module, cfg: DetectorTrainParams, fused: bool = False):
    """Adam or SGD with momentum; weight decay on conv weights only, as Darknet decays them.

    `fused` updates every parameter in one kernel rather than several per parameter.
    """
    decay = [p for name, p in model.named_parameters() if name.endswith("conv.weight")]
    rest = [p for name, p in model.named_parameters() if not name.endswith("conv.weight")]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest}]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, fused=fused or None)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, fused=fused or None)
    raise ValueError(f"Invalid optimizer {cfg.optimizer!r}: expected 'adam' or 'sgd'")


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
