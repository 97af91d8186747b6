"""Shared by the benchmarks: wall time of a call, the name of the device it ran on, and the
results file with the machine and code version they were measured on."""

import json
import os
import platform
import time
from pathlib import Path

import torch

from kitti_pipeline.core.version import code_version


def timed(fn, device: torch.device, *args) -> dict:
    """Run `fn(*args)`, which returns an image count; its seconds and images per second."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    images = fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "images_per_s": images / seconds}


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (figures differ between CPU models)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def write_results(path: str | Path, device: torch.device, **fields) -> None:
    """`fields` as a JSON file, after the device, CPU count and code version of the run."""
    out = {
        "device": device_name(device),
        "cpu_count": os.cpu_count(),
        "code_version": code_version(),
        **fields,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=2) + "\n")
