"""Where a stage computes: the torch device named by the params, and autocast on it.

Autocast (`amp: true`) runs in bfloat16 on a CUDA GPU that supports it (Ampere and newer), else
in float16 with a gradient scaler, since float16's narrow range lets small gradients underflow
to zero. On the CPU it runs in bfloat16 only for a network whose caller asks for it (`cpu_bf16`)
and only on a CPU with native bfloat16 instructions (AVX-512 BF16 or AMX): there
bench/cpu_autocast.py measured the demo detector's training step 1.8x to 2.3x faster, while
MobileNetV2 ran slower (0.79x to 0.84x) and ResNet18 gained 1.0x to 1.18x at the demo's 64 px.
Elsewhere the CPU stays in float32.
"""

from __future__ import annotations

import contextlib
import warnings

import torch


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available, else the CPU (saying why); `cuda` without it is an error.

    Raises:
        RuntimeError: for `cuda` when torch cannot use a CUDA device, with torch's own reason
            (no driver, a driver too old for this build, no device).
    """
    if name == "auto":
        if cuda_available():
            return torch.device("cuda")
        if torch.version.cuda is not None:  # a CUDA build that found no usable GPU
            print(f"device: auto runs on the CPU: {cuda_problem()}")
        return torch.device("cpu")
    if name == "cuda" and not cuda_available():
        raise RuntimeError(f"device: cuda was asked for, but {cuda_problem()}")
    return torch.device(name)


def cuda_available() -> bool:
    """`torch.cuda.is_available()` without its warning (a driver too old, say): the one line
    `resolve_device` prints, or its error, gives the reason where it matters."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.cuda.is_available()


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


def native_cpu_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX tiles)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def amp_dtype(device: torch.device, enabled: bool, cpu_bf16: bool = False) -> torch.dtype | None:
    """The autocast type: bfloat16 on a CUDA device that supports it, else float16 on CUDA;
    on the CPU bfloat16 when `cpu_bf16` and the CPU has it natively; None (no autocast) when
    not `enabled` or elsewhere on the CPU."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_bf16 and native_cpu_bf16():
        return torch.bfloat16
    return None


def compute_type(device: torch.device, enabled: bool, cpu_bf16: bool = False) -> str:
    """The type the forward pass computes in, for a run's record: `bfloat16`, `float16` or
    `float32`."""
    dtype = amp_dtype(device, enabled, cpu_bf16)
    return str(dtype or torch.float32).removeprefix("torch.")


def autocast(device: torch.device, enabled: bool, cpu_bf16: bool = False):
    """Autocast in `amp_dtype(...)`; a context that changes nothing where that is None."""
    dtype = amp_dtype(device, enabled, cpu_bf16)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """A gradient scaler that is on only under float16 autocast; elsewhere `scale`, `step` and
    `update` pass straight through to the loss and the optimizer."""
    on = amp_dtype(device, enabled) == torch.float16
    return torch.amp.GradScaler(device.type, enabled=on)
