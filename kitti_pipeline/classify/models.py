"""The two crop classifiers, ResNet18 and MobileNetV2, and the three training regimes.

Models are torchvision's own, so ImageNet state dicts load without renaming. Each is viewed as a
backbone, which maps a batch of images to pooled features, and a head on those features:

    ResNet18     backbone: conv1 .. layer4, avgpool, flatten -> (B, 512)    head: fc
    MobileNetV2  backbone: features, avgpool, flatten         -> (B, 1280)   head: classifier
                 (Dropout(0.2) then Linear; the Linear, classifier[1], is replaced)

Regimes:
    scratch   random initialisation, everything trains;
    frozen    pretrained backbone, only the new head trains; the backbone stays in eval mode so
              its BatchNorm layers use and keep their pretrained running statistics;
    finetune  pretrained backbone, everything trains.
The control arm, `frozen_random`, is the frozen regime on a randomly initialised backbone.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torchvision import models

from kitti_pipeline.core.params import REGIMES

Arch = Literal["resnet18", "mobilenet_v2"]
Regime = Literal["scratch", "frozen", "finetune"]
ARCHS = ("resnet18", "mobilenet_v2")
# State-dict keys of the layer each architecture's head replaces.
HEAD_KEYS = {
    "resnet18": ("fc.weight", "fc.bias"),
    "mobilenet_v2": ("classifier.1.weight", "classifier.1.bias"),
}


def build_classifier(arch: str, num_classes: int) -> nn.Module:
    """A randomly initialised torchvision model with a `num_classes` head."""
    if arch == "resnet18":
        return models.resnet18(weights=None, num_classes=num_classes)
    if arch == "mobilenet_v2":
        return models.mobilenet_v2(weights=None, num_classes=num_classes)
    raise ValueError(f"Invalid architecture {arch!r}: expected one of {ARCHS}")


# Architectures kept channels_last on the CPU too, where bench/cpu_autocast.py measured a gain:
# MobileNetV2's training step 1.26x to 1.45x faster at 64 px; ResNet18's 0.87x to 1.09x (none).
CPU_CHANNELS_LAST = ("mobilenet_v2",)


def to_device(model: nn.Module, arch: str, device: torch.device | str) -> nn.Module:
    """`model` on `device`, channels_last on CUDA and, for `CPU_CHANNELS_LAST`, on the CPU."""
    device = torch.device(device)
    if device.type == "cuda" or arch in CPU_CHANNELS_LAST:
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)


def backbone(model: nn.Module) -> nn.Module:
    """The feature extractor of `model`, sharing its modules: images (B, 3, H, W) -> (B, F)."""
    if isinstance(model, models.ResNet):
        return nn.Sequential(*list(model.children())[:-1], nn.Flatten())
    if isinstance(model, models.MobileNetV2):
        return nn.Sequential(model.features, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    raise TypeError(f"no backbone split for {type(model).__name__}")


def head(model: nn.Module) -> nn.Module:
    """What runs on the pooled features: `fc` or `classifier` (dropout + linear)."""
    if isinstance(model, models.ResNet):
        return model.fc
    if isinstance(model, models.MobileNetV2):
        return model.classifier
    raise TypeError(f"no head for {type(model).__name__}")


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the final linear layer for a fresh one with `num_classes` outputs, in place."""
    if isinstance(model, models.ResNet):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    elif isinstance(model, models.MobileNetV2):
        model.classifier[1] = nn.Linear(model.classifier[1].in_features, num_classes)
    else:
        raise TypeError(f"no head for {type(model).__name__}")
    return model


def random_backbone(arch: str, num_classes: int, seed: int) -> dict[str, torch.Tensor]:
    """The backbone state (head keys dropped) of randomly initialised `arch` weights drawn from
    `seed`: the `random` init source's, and the control arm's."""
    torch.manual_seed(seed)
    state = build_classifier(arch, num_classes).state_dict()
    return {k: v for k, v in state.items() if k not in HEAD_KEYS[arch]}


def load_backbone(model: nn.Module, arch: str, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load pretrained weights into everything but the head.

    Args:
        model: A model from `build_classifier(arch, ...)`.
        arch: Its architecture name.
        state: A state dict; head keys in it, if any, are ignored.
        origin: Where the weights came from, for error messages.

    Raises:
        ValueError: when keys are missing or unexpected, or a shape differs, listing them.
    """
    head_keys = set(HEAD_KEYS[arch])
    own = {k: v for k, v in model.state_dict().items() if k not in head_keys}
    given = {k: v for k, v in state.items() if k not in head_keys}
    missing, unexpected = sorted(own.keys() - given.keys()), sorted(given.keys() - own.keys())
    wrong = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(given[k].shape)}"
        for k in sorted(own.keys() & given.keys())
        if own[k].shape != given[k].shape
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{origin} does not fit {arch}: "
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys "
            f"{unexpected[:3]}, {len(wrong)} shape mismatches {wrong[:3]}"
        )
    model.load_state_dict(given, strict=False)


def trainable_parameters(model: nn.Module, regime: str) -> list[nn.Parameter]:
    """Set `requires_grad` for `regime` and return the parameters the optimizer gets."""
    if regime not in REGIMES:
        raise ValueError(f"Invalid regime {regime!r}: expected one of {REGIMES}")
    frozen = regime == "frozen"
    head_params = {id(p) for p in head(model).parameters()}
    for p in model.parameters():
        p.requires_grad_(not frozen or id(p) in head_params)
    return [p for p in model.parameters() if p.requires_grad]


def set_train_mode(model: nn.Module, regime: str) -> None:
    """`model.train()`, except that a frozen backbone stays in eval mode (BatchNorm frozen)."""
    model.train()
    if regime == "frozen":
        backbone(model).eval()


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
