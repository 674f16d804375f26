"""torchrun and devices, in one place: which process this is (RANK, WORLD_SIZE, LOCAL_RANK from the
environment), which device it runs on, and the process groups of a DDP run, set up and torn down.

Labelling uses the first two (each rank labels its own slice, no communication); training all three.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator


def under_torchrun() -> bool:
    """Whether torchrun (or anything setting RANK) started this process: DDP is on then, not by a flag."""
    return "RANK" in os.environ


def environment() -> tuple[int, int, int]:
    """(rank, world size, local rank) of this process: torchrun's RANK, WORLD_SIZE and LOCAL_RANK, else (0, 1, 0)."""
    if not under_torchrun():
        return 0, 1, 0
    return int(os.environ["RANK"]), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def choose_device(device="cpu"):
    """The torch device this process uses for ``device`` ("cpu", "cuda" or "cuda:N"): under torchrun,
    "cuda" means cuda:LOCAL_RANK. Raises ValueError for a CUDA device torch cannot see."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device}: torch sees no CUDA GPU here (torch {torch.__version__}); use --device cpu")
        if device.index is None and under_torchrun():
            device = torch.device("cuda", environment()[2])
    return device


@dataclass
class Processes:
    """The processes of a run as this one sees them: its ``rank`` of ``world``, its ``device``, and the
    gloo group Python objects travel in (None in a single process)."""

    rank: int
    world: int
    device: object
    objects: object = None

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the process that writes files and prints."""
        return self.rank == 0

    def data_parallel(self, module):
        """``module`` wrapped in DistributedDataParallel when there are several processes (each backward
        then averages the gradients of all processes), else ``module`` itself."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def all_gather(self, obj) -> list:
        """Every process's ``obj`` (picklable), in rank order; ``[obj]`` in a single process."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        gathered = [None] * self.world
        dist.all_gather_object(gathered, obj, group=self.objects)
        return gathered


@contextlib.contextmanager
def process_group(device="cpu") -> Iterator[Processes]:
    """The processes of a run: a single one, or under torchrun the default process group (NCCL for
    CUDA, gloo on CPU) for DDP plus a gloo group for Python objects; both torn down on exit.

    Why a group of its own for Python objects: DDP keeps the default group alive after
    ``destroy_process_group`` (torch 2.13), so its gloo worker threads outlive the run; a worker that
    releases the last reference to an ``all_gather_object`` tensor after the interpreter began to
    shut down needs the GIL it can no longer get, and the process aborts with "terminate called
    without an active exception" (seen on the rank that exits first, under load). The objects group
    is not held by DDP: destroying it joins its workers while the interpreter is fully alive.
    """
    import torch.distributed as dist

    rank, world, _ = environment()
    device = choose_device(device)
    if not under_torchrun():
        yield Processes(rank, world, device)
        return
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    processes = Processes(rank, world, device, dist.new_group(backend="gloo"))
    try:
        yield processes
    finally:
        processes.objects = None  # the last reference outside torch: destroying the group now joins its threads
        if dist.is_initialized():
            dist.destroy_process_group()
