"""Data-parallel training with torchrun: `torchrun --nproc_per_node=N -m helpers train ...`.

torchrun starts N copies of the same command and tells each its RANK and WORLD_SIZE. Every rank
holds the whole model; each step every rank runs its share of the global batch, DistributedDataParallel
averages the gradients across ranks during backward, and all ranks take the same optimizer step.
Only rank 0 evaluates, logs and writes checkpoints. gloo carries the gradients between CPU
processes, nccl between GPUs.

Taught on the book's Performance page; used by helpers.train. A plain `python -m helpers train`
is world size 1, and nothing here does anything.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def setup(device: str) -> tuple[World, str]:
    """Join the process group torchrun describes (if any); return the world and this rank's device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), device
    world = World(launched_rank(), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.startswith("cuda"):
        device = f"cuda:{world.local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return world, device


def teardown(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.destroy_process_group()


def agree(world: World, flags: list[float], device: str) -> list[float]:
    """Element-wise max over ranks: one rank's 'stop' (Ctrl-C, early stop, time up) stops them all."""
    if not world.active:
        return flags
    t = torch.tensor(flags, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def mean(world: World, value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over ranks (the logged training loss)."""
    if world.active:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= world.size
    return value


def replicas_equal(world: World, model: torch.nn.Module, device: str) -> bool:
    """Check that every rank holds the same weights (a cheap checksum): DDP's whole promise."""
    if not world.active:
        return True
    with torch.no_grad():
        s = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1).to(device)
    lo, hi = s.clone(), s.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return bool((hi - lo).abs() <= 1e-9 * max(1.0, float(s.abs())))


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()
