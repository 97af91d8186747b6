"""What each run of the detector study trains, epoch by epoch.

    scratch   every layer, from random weights
    transfer  every layer, from the init weights (full fine-tuning)
    frozen    the init weights' leading layers stay fixed (their BatchNorm statistics too) and
              only the rest trains, `head_epochs` at `head_lr`: the prediction convs alone by
              default, as few-shot detection fine-tunes only the last layer (Wang et al., ICML
              2020)
    lpft      the frozen regime, then every layer for `epochs` at `finetune_lr`: linear probe,
              then fine-tune (Kumar et al., ICLR 2022)
    zeroshot  nothing: the init weights as they are, COCO's own car head when
              `detector.init.head_classes` carries it

A run is a list of phases, each a span of epochs with its frozen layers and learning rate. The
learning rate burns in again at the start of each phase: the layers it unfreezes start with no
optimizer state.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from kitti_pipeline.core.params import DETECTOR_RUNS, DetectorTrainParams
from kitti_pipeline.detect.darknet import Darknet


@dataclass(frozen=True)
class Phase:
    """Epochs `first` to `last` (1-based, inclusive) train at `lr` with `frozen` layers fixed
    (indices into `Darknet.layers`)."""

    first: int
    last: int
    frozen: frozenset[int]
    lr: float


def frozen_layers(model: Darknet, count: int | None) -> frozenset[int]:
    """The layers the frozen regime keeps fixed: the first `count` of the cfg's (Darknet's
    layer numbering, as `darknet partial` counts them), or with None every layer holding
    weights but the prediction convs.

    Raises:
        ValueError: when `count` leaves no layer with weights to train.
    """
    weighted = [i for i, layer in enumerate(model.layers) if list(layer.parameters())]
    if count is None:
        convs = model.convolutions()
        heads = {id(convs[k]) for k in model.prediction_convs()}
        return frozenset(i for i in weighted if id(model.layers[i]) not in heads)
    if not any(i >= count for i in weighted):
        raise ValueError(
            f"detector.train.frozen_layers {count} freezes every layer with weights of "
            f"{len(model.layers)}: nothing would train"
        )
    return frozenset(range(min(count, len(model.layers))))


def training_phases(run: str, cfg: DetectorTrainParams, model: Darknet) -> list[Phase]:
    """The phases of `run` under `cfg`; `zeroshot` has none.

    Raises:
        ValueError: naming an unknown run.
    """
    if run not in DETECTOR_RUNS:
        raise ValueError(f"Invalid run {run!r}: expected one of {DETECTOR_RUNS}")
    if run == "zeroshot":
        return []
    if run in ("scratch", "transfer"):
        return [Phase(1, cfg.epochs, frozenset(), cfg.lr)]
    head = frozen_layers(model, cfg.frozen_layers)
    head_epochs = cfg.epochs if cfg.head_epochs is None else cfg.head_epochs
    head_lr = cfg.lr if cfg.head_lr is None else cfg.head_lr
    probe = Phase(1, head_epochs, head, head_lr)
    if run == "frozen":
        return [probe]
    finetune_lr = cfg.lr if cfg.finetune_lr is None else cfg.finetune_lr
    return [probe, Phase(head_epochs + 1, head_epochs + cfg.epochs, frozenset(), finetune_lr)]


def phase_of(phases: list[Phase], epoch: int) -> Phase:
    """The phase epoch `epoch` belongs to."""
    return next(p for p in phases if p.first <= epoch <= p.last)


def freeze(model: Darknet, phase: Phase) -> None:
    """Let exactly the parameters outside `phase.frozen` take gradients."""
    for i, layer in enumerate(model.layers):
        for p in layer.parameters():
            p.requires_grad_(i not in phase.frozen)


def set_train_mode(net: nn.Module, model: Darknet, phase: Phase, freeze_bn: bool) -> None:
    """`net.train()` (the model, or its data-parallel wrapper), except BatchNorm layers of
    `model` that keep their running statistics: those of the frozen layers, and with
    `freeze_bn` every one (batches of a few frames give noisy statistics that would replace the
    pretrained ones)."""
    net.train()
    for i, layer in enumerate(model.layers):
        if freeze_bn or i in phase.frozen:
            for module in layer.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
