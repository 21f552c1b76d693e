"""Fixed shards of work (independent of the number of processes) and their owners."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from liteasr.errors import UserError


def blocks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    block = []
    for item in items:
        block.append(item)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def balance(costs: list[float], world: int) -> list[list[int]]:
    """Task indices per rank, balanced by cost: longest first, each to the least loaded rank
    (ties to the lowest rank, so every process computes the same split)."""
    loads = [(0.0, rank) for rank in range(world)]
    owners: list[list[int]] = [[] for _ in range(world)]
    for task in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, rank = heapq.heappop(loads)
        owners[rank].append(task)
        heapq.heappush(loads, (load + costs[task], rank))
    return [sorted(tasks) for tasks in owners]


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (0 <= I < N) -> (I, N)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if count <= 0 or not 0 <= index < count:
        raise UserError(f"--shard I/N needs 0 <= I < N, got {text}")
    return index, count
