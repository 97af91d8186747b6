"""Where a stage computes: the torch device named by the params, and autocast on it."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when `enabled`; elsewhere a context that changes nothing."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
