"""Combining partial results so that any number of processes gives the one-process answer."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from liteasr.distributed.group import Group


def sum_in_shard_order(group: Group, partial: Iterable[tuple[str, torch.Tensor]], total: dict[str, torch.Tensor],
                       present: bool) -> None:
    """Add this round's shards to `total` in shard order: rank r holds shard round * world + r.

    Every rank sends every key in the same order (an absent shard sends its zeros and is skipped),
    one key at a time: pass a generator, and beyond the local sums only one key's tensors from all
    ranks are in memory. Float additions happen in the same order for any world size, hence
    bit-identical totals."""
    flags = group.all_gather(torch.tensor([1.0 if present else 0.0], dtype=torch.float64))
    for key, tensor in partial:
        parts = group.all_gather(tensor)
        for flag, part in zip(flags, parts):
            if flag.item():
                total[key] += part.to(total[key].device)


def gather_by_index(group: Group, local: dict[int, object]) -> dict[int, object]:
    """Union of every rank's {index: value}; an index held twice is a bug."""
    merged: dict[int, object] = {}
    for part in group.all_gather_object(local):
        for index, value in part.items():
            if index in merged:
                raise RuntimeError(f"item {index} was computed by two processes")
            merged[index] = value
    return merged
