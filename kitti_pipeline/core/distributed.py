"""Data-parallel training when a stage is started by `torchrun`.

`torchrun --nproc-per-node=N stages/train_classifier.py ...` sets RANK, LOCAL_RANK and WORLD_SIZE;
the training stages then run N processes (NCCL on CUDA, one GPU each; gloo on the CPU), with the
model wrapped in DistributedDataParallel. Started any other way, a stage runs as one process and
nothing here changes what it computes.

`batch_size` stays the global batch: every process draws the same batch order from the seeded
generator and takes its own slice of each batch, and each slice's loss is weighted by its share,
so the averaged gradient is that of the whole batch and the learning rate keeps its meaning.
(BatchNorm statistics are per process unless SyncBatchNorm is used, which needs CUDA.) Only rank 0
writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kitti_pipeline.core.device import resolve_device


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: rank `rank` of `size`."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes outputs and prints progress."""
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This process's slice of a global batch of indices, and its loss weight.

        The weight is len(slice) * size / len(batch): DDP averages gradients over processes, so
        weighted mean losses average to the mean over the whole batch. A last batch smaller than
        the world leaves some processes nothing; they take one index with weight 0, which keeps
        the gradient all-reduce in step without changing the update.
        """
        mine = batch.tensor_split(self.size)[self.rank]
        if len(mine) == 0:
            return batch[:1], 0.0
        return mine, len(mine) * self.size / len(batch)

    def sum(self, value: float) -> float:
        """`value` summed over every process (itself when there is one)."""
        if self.size == 1:
            return value
        # NCCL reduces only CUDA tensors; gloo takes CPU ones.
        on_gpu = dist.get_backend() == dist.Backend.NCCL
        device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else None
        total = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(total)
        return total.item()

    def wrap(self, module: nn.Module) -> nn.Module:
        """`module` in DistributedDataParallel when there are several processes."""
        if self.size == 1:
            return module
        device = next(module.parameters()).device
        return DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )


SINGLE = World()  # one process: what every stage is outside torchrun


def init_world(device_name: str) -> tuple[World, torch.device]:
    """Join the process group when started by torchrun, and pick this process's device.

    Args:
        device_name: The params' `device` (`auto`, `cpu`, `cuda`).

    Returns:
        The world (rank 0 of 1 outside torchrun) and the device: `cuda:LOCAL_RANK` on CUDA.
    """
    device = resolve_device(device_name)
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size()), device


def close_world(world: World) -> None:
    """Leave the process group (after every process is done)."""
    if world.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
