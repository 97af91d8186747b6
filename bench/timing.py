"""Shared by the benchmarks: wall time of a call, and the name of the device it ran on."""

import platform
import time

import torch


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
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    return platform.processor() or platform.machine()
