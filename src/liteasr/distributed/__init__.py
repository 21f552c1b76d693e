"""Several processes (launched by `torchrun`) doing the work of one, with the same result.

Work is cut into fixed shards that do not depend on the number of processes; partial results are
combined in shard order, so one process and N processes compute the same numbers. One process is
the same code with a group of size 1 (no torch.distributed at all).
"""

from liteasr.distributed.group import Group, PeerLost, current, launched, session
from liteasr.distributed.reduce import gather_by_index, sum_in_shard_order
from liteasr.distributed.shards import balance, blocks, parse_shard

__all__ = ["Group", "PeerLost", "current", "launched", "session", "gather_by_index", "sum_in_shard_order",
           "balance", "blocks", "parse_shard"]
