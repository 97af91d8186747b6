"""Data-parallel training when a stage is started by `torchrun`.

`torchrun --nproc-per-node=N stages/train_classifier.py ...` sets RANK, LOCAL_RANK and WORLD_SIZE;
the training stages then run N processes (NCCL on CUDA, one GPU each; gloo on the CPU), with the
model wrapped in DistributedDataParallel. Started any other way, a stage runs as one process and
nothing here changes what it computes.

`batch_size` stays the global batch: every process draws the same batch order from the seeded
generator and takes its own slice of each batch, and each slice's loss is weighted by its share,
so the averaged gradient is that of the whole batch and the learning rate keeps its meaning.
The detector's BatchNorm takes its statistics over the whole batch too (`sync_batchnorm`:
torch's SyncBatchNorm on CUDA, `GlobalBatchNorm2d` on gloo CPU processes), so N processes train
the weights one process would. Only rank 0 writes files.

On CUDA the promise is within tolerance, not bit for bit: cuDNN's autotuned kernels and the
non-deterministic backward of upsampling reorder float sums from run to run, so a resumed or
repeated CUDA run reaches nearly, not exactly, the same weights. On the CPU it is exact.
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


class SummedOverProcesses(torch.autograd.Function):
    """A tensor summed over every process; its gradient too, as each process's loss depends on
    every process's share of the sum."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, on any backend.

    torch's SyncBatchNorm refuses CPU tensors. This one sums each channel's count and sum, then
    its squared deviations from the global mean, over the processes (with their gradients), so
    a batch split over processes normalises, back-propagates and updates its running statistics
    as one process would on the whole batch. With one process, or in eval mode, it is plain
    BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        xf = x.float()
        count = torch.full((1,), xf.numel() / x.shape[1], dtype=xf.dtype)
        sums = SummedOverProcesses.apply(torch.cat([xf.sum((0, 2, 3)), count]))
        n = sums[-1]
        mean = (sums[:-1] / n).view(1, -1, 1, 1)  # (1, C, 1, 1)
        centred = xf - mean
        # Two passes, as BatchNorm's own kernels: E[x^2] - E[x]^2 loses digits to cancellation.
        var = SummedOverProcesses.apply((centred * centred).sum((0, 2, 3))) / n  # biased
        with torch.no_grad():  # running statistics as BatchNorm2d keeps them: unbiased variance
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.flatten(), self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
        scale = (self.weight / torch.sqrt(var + self.eps)).view(1, -1, 1, 1)
        return (centred * scale + self.bias.view(1, -1, 1, 1)).to(x.dtype)


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm2d taking global-batch statistics: SyncBatchNorm on CUDA,
    `GlobalBatchNorm2d` elsewhere (weights and running statistics kept)."""
    if next(module.parameters()).device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.BatchNorm2d:
                new = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum)
                new.load_state_dict(child.state_dict())
                setattr(parent, name, new.to(child.weight.device))
    return module


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
