"""Data-parallel training across processes (torchrun; gloo on CPU, NCCL on CUDA).

Gradients are averaged explicitly after ``backward`` (one flattened all-reduce per step) rather than by
wrapping the model in ``DistributedDataParallel``: GradNet's forward takes ``autograd.grad`` with
``create_graph=True``, which DDP's reducer hooks do not support, and its search branch is frozen.  The
result is the same synchronous data parallelism: every rank starts from rank 0's weights, applies the same
averaged gradient and ends with the same weights; BN running statistics are copied from rank 0 after
each step (as DDP does with ``broadcast_buffers``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1), else single process."""
    want_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if want_cuda:
        if not torch.cuda.is_available():
            raise RuntimeError("device: cuda asked for, but CUDA is not available")
        torch.cuda.set_device(local % torch.cuda.device_count())
        dev = torch.device("cuda", local % torch.cuda.device_count())
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistInfo(rank, world, local, dev)


def broadcast_module(module: torch.nn.Module, info: DistInfo, buffers_only: bool = False) -> None:
    if not info.enabled:
        return
    with torch.no_grad():
        tensors = list(module.buffers()) if buffers_only else list(module.parameters()) + list(module.buffers())
        for t in tensors:
            if t.is_floating_point() or not buffers_only:
                dist.broadcast(t.data, src=0)


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    if not info.enabled:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        if p.grad is None:
            p.grad = flat[offset:offset + n].view_as(p).clone()
        else:
            p.grad.copy_(flat[offset:offset + n].view_as(p))
        offset += n


def all_mean(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t.item()) / info.world


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
