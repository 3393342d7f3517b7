"""Multi-process training under ``torchrun``: a :class:`~advx.training.World` backed by
``torch.distributed`` and :class:`~torch.nn.parallel.DistributedDataParallel`.

``torchrun --nproc_per_node N -m advx train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set. :func:`init_world`
joins the process group (gloo for CPU tensors, nccl for CUDA ones) and returns a
:class:`DistributedWorld`: each process takes its
:class:`~torch.utils.data.DistributedSampler` share of every epoch's permutation (the
permutation itself is drawn from the same seed on every process), the model is wrapped in
DDP so gradients are averaged across processes after each backward, epoch metrics are
summed across processes, and only rank 0 writes the checkpoint.

``batch_size`` is per process (the PyTorch convention): N processes with batch B/N take
the steps of one process with batch B, and follow it up to floating-point summation order
and batch-norm statistics (computed per process, and rank 0's running buffers are the ones
broadcast and kept).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advx.errors import ConfigError
from advx.training import World


@dataclass(frozen=True)
class DistributedWorld(World):
    """The processes of a ``torch.distributed`` group (see module docstring).

    Attributes:
        rank, world_size: of this process in the group.
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (CUDA).
    """

    backend: str = "gloo"

    def shard(self, order: Tensor) -> Tensor:
        """This process's share of ``order``, as :class:`DistributedSampler` picks it
        (padded to a multiple of ``world_size``, every ``world_size``-th from ``rank``)."""
        from torch.utils.data import DistributedSampler

        sampler: DistributedSampler[int] = DistributedSampler(
            range(order.numel()),  # type: ignore[arg-type]  # any sized sequence works
            num_replicas=self.world_size,
            rank=self.rank,
            shuffle=False,
        )
        return order[torch.tensor(list(iter(sampler)), dtype=torch.int64)]

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP around ``model`` (parameters are broadcast from rank 0 at construction)."""
        from torch.nn.parallel import DistributedDataParallel

        if self.backend == "nccl":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            return DistributedDataParallel(model, device_ids=[device])
        return DistributedDataParallel(model)

    def all_reduce(self, t: Tensor) -> Tensor:
        """Sum of ``t`` over the processes (a new tensor; ``t`` is unchanged)."""
        import torch.distributed as dist

        out = t.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def barrier(self) -> None:
        """Wait for every process."""
        import torch.distributed as dist

        dist.barrier()


def launched_by_torchrun() -> bool:
    """True when the environment says this process is one of several (``WORLD_SIZE > 1``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_world(backend: str | None = None) -> World:
    """The :class:`~advx.training.World` of this process.

    A single process (no ``torchrun``) gets the default ``World()``. Under ``torchrun``
    the process group is initialised (once) with ``backend``: default ``"gloo"``, since the
    training loop keeps tensors on the CPU; ``"nccl"`` is for CUDA tensors.

    Raises:
        ConfigError: unknown backend, or the torchrun environment is incomplete.
    """
    if not launched_by_torchrun():
        return World()
    import torch.distributed as dist

    backend = backend or "gloo"
    if backend not in ("gloo", "nccl"):
        raise ConfigError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ConfigError("the nccl backend needs CUDA; use gloo on CPU")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE > 1 but {', '.join(missing)} not set; launch with torchrun")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistributedWorld(rank=dist.get_rank(), world_size=dist.get_world_size(), backend=backend)


def close_world(world: World) -> None:
    """Leave the process group of a :class:`DistributedWorld` (no-op otherwise)."""
    if isinstance(world, DistributedWorld):
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
