"""Where a stage computes: the torch device named by the params, and autocast on it.

Autocast (`amp: true`) runs on CUDA only: in bfloat16 where the GPU supports it (Ampere and
newer), else in float16 with a gradient scaler, since float16's narrow range lets small
gradients underflow to zero. On the CPU everything stays float32.
"""

from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available, else the CPU (saying why); `cuda` without it is an error.

    Raises:
        RuntimeError: for `cuda` when torch cannot use a CUDA device, with torch's own reason
            (no driver, a driver too old for this build, no device).
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.version.cuda is not None:  # a CUDA build that found no usable GPU
            print(f"device: auto runs on the CPU: {cuda_problem()}")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device: cuda was asked for, but {cuda_problem()}")
    return torch.device(name)


def cuda_problem() -> str:
    """Why torch cannot use CUDA here, in torch's words where it gives them."""
    build = f"torch {torch.__version__}, built for CUDA {torch.version.cuda}"
    if torch.version.cuda is None:
        return f"this torch is built without CUDA ({build})"
    try:
        torch.cuda.init()
    except Exception as err:  # torch reports a missing or too-old driver this way
        return f"torch cannot use CUDA: {err} ({build})"
    return f"torch sees {torch.cuda.device_count()} CUDA devices ({build})"


def describe_device(device: torch.device) -> str:
    """The device and, for CUDA, the GPU's name: what a training stage prints at its start."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast type: bfloat16 on a CUDA device that supports it, else float16 on CUDA;
    None (no autocast) on the CPU or when not `enabled`."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, enabled: bool):
    """Autocast in `amp_dtype(device, enabled)`; a context that changes nothing where None."""
    dtype = amp_dtype(device, enabled)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """A gradient scaler that is on only under float16 autocast; elsewhere `scale`, `step` and
    `update` pass straight through to the loss and the optimizer."""
    on = amp_dtype(device, enabled) == torch.float16
    return torch.amp.GradScaler(device.type, enabled=on)
