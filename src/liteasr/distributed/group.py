"""The process group: read from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*).

NCCL on GPUs, gloo on CPU. Every collective has a timeout (LITEASR_DIST_TIMEOUT seconds, default
1800), and a lost peer or a timeout becomes one clear error instead of a hang or a traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from liteasr.errors import UserError

DEFAULT_TIMEOUT_S = 1800  # a rank-0-only step (eigendecompositions of large-v3, a checkpoint write) fits


class PeerLost(UserError):
    """Another process died, timed out or could not be reached."""


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    device: str = "cpu"  # where tensors must be for the backend's collectives

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """This tensor from every rank, in rank order (the same shape on every rank)."""
        if self.world == 1:
            return [tensor]
        local = tensor.to(self.device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world)]
        with _collective("all_gather"):
            dist.all_gather(parts, local)
        return [p.to(tensor.device) for p in parts]

    def all_gather_object(self, obj) -> list:
        if self.world == 1:
            return [obj]
        parts = [None] * self.world
        with _collective("all_gather_object"):
            dist.all_gather_object(parts, obj)
        return parts

    def broadcast_object(self, obj, src: int = 0):
        if self.world == 1:
            return obj
        box = [obj]
        with _collective("broadcast_object"):
            dist.broadcast_object_list(box, src=src)
        return box[0]

    def broadcast(self, tensor: torch.Tensor, src: int) -> torch.Tensor:
        """Rank `src`'s tensor on every rank (others pass a tensor of the same shape and dtype)."""
        if self.world == 1:
            return tensor
        local = tensor.to(self.device).contiguous()
        with _collective("broadcast"):
            dist.broadcast(local, src=src)
        return local.to(tensor.device)

    def barrier(self) -> None:
        if self.world > 1:
            with _collective("barrier"):
                dist.barrier()


_current = Group()


def current() -> Group:
    """The group of this process: size 1 unless `session` set one up."""
    return _current


def launched() -> bool:
    """Started by torchrun (or an equivalent launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def timeout_s() -> float:
    text = os.environ.get("LITEASR_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"LITEASR_DIST_TIMEOUT must be a number of seconds, got {text!r}") from None
    if value <= 0:
        raise UserError(f"LITEASR_DIST_TIMEOUT must be positive, got {text}")
    return value


@contextlib.contextmanager
def _collective(what: str):
    try:
        yield
    except (RuntimeError, dist.DistError) as exc:  # gloo/NCCL report a dead peer or a timeout this way
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PeerLost(f"rank {_current.rank} of {_current.world}: {what} failed, another process died or timed out "
                       f"after {timeout_s():.0f} s (LITEASR_DIST_TIMEOUT) ({reason[:200]})") from None


@contextlib.contextmanager
def session(device: str = "cpu"):
    """Join torchrun's process group (size 1 when not launched). The group lives as long as the
    process: joining twice (several commands in one launch) reuses it."""
    global _current
    if not launched() or dist.is_initialized():
        yield _current
        return
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    _current = Group(rank, world, f"cuda:{torch.cuda.current_device()}" if cuda else "cpu")
    try:
        with _collective("joining the process group"):
            dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world,
                                    timeout=timedelta(seconds=timeout_s()))
    except BaseException:
        _current = Group()
        raise
    atexit.register(_leave)
    yield _current


def _leave() -> None:
    with contextlib.suppress(Exception):
        dist.destroy_process_group()
