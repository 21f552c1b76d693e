"""Budget-driven rank allocation: meet a parameter or FLOP target with the least predicted damage
(damage table -> rank plan).

Each projection has candidate ranks (multiples of `rank_multiple` below the size where factoring
stops paying, plus dense) and a predicted damage per candidate (damage.py). Starting from dense
everywhere, we repeatedly make the move with the least added damage per parameter (or FLOP) saved.
A move may skip ranks: the first step below dense saves almost nothing for a wide MLP projection,
so a one-step greedy would never start on it; looking at every lower rank follows the lower convex
hull of each layer's damage curve instead. Once the budget is met, leftover slack is spent back on
the moves that remove the most damage.
"""

from __future__ import annotations

from dataclasses import dataclass

from liteasr.errors import UserError
from liteasr.planning.damage import DamageTable, Rank, discarded
from liteasr.planning.plan import LayerRank, RankPlan


@dataclass(frozen=True)
class Budget:
    kind: str  # "params" (encoder linear parameters kept) or "flops" (encoder FLOPs kept)
    fraction: float

    def __post_init__(self):
        if self.kind not in ("params", "flops"):
            raise UserError(f"budget kind must be params or flops, got {self.kind}")
        if not 0 < self.fraction <= 1:
            raise UserError(f"target fraction must be in (0, 1], got {self.fraction}")


def cost(kind: str, d_in: int, d_out: int, rank: Rank, frames: int) -> int:
    """Parameters (weights + bias) or FLOPs of one projection at `rank`."""
    inner = d_in * d_out if rank is None else rank * (d_in + d_out)
    return inner + d_out if kind == "params" else 2 * frames * inner


def allocate(table: DamageTable, shapes: dict[str, tuple[int, int]], budget: Budget, eig: dict,
             method: str, frames: int = 1500, fixed_flops: int = 0) -> RankPlan:
    """Ranks (from each projection's candidates, the keys of `table[key]`, ascending, dense last) that
    keep `budget`. `fixed_flops`: FLOPs outside the projections (attention, conv), counted in a FLOP
    budget but not reducible here."""
    options = {k: list(table[k]) for k in shapes}
    price = {k: [cost(budget.kind, *shapes[k], r, frames) for r in options[k]] for k in shapes}
    harm = {k: [table[k][r] for r in options[k]] for k in shapes}
    choice = {k: len(o) - 1 for k, o in options.items()}  # start dense
    full = sum(p[-1] for p in price.values()) + (fixed_flops if budget.kind == "flops" else 0)
    target = budget.fraction * full
    total = full
    while total > target:
        best, best_ratio = None, float("inf")
        for k, i in choice.items():
            for j in range(i):
                ratio = (harm[k][j] - harm[k][i]) / max(price[k][i] - price[k][j], 1)
                if ratio < best_ratio:
                    best, best_ratio = (k, j), ratio
        if best is None:
            raise UserError(f"target {budget.kind} {budget.fraction} cannot be met: the smallest ranks keep "
                            f"{total / full:.3f} of the encoder {budget.kind}")
        k, j = best
        total -= price[k][choice[k]] - price[k][j]
        choice[k] = j
    while True:  # spend the slack left by the last (possibly large) move
        best, best_gain = None, 0.0
        for k, i in choice.items():
            for j in range(i + 1, len(options[k])):
                extra = price[k][j] - price[k][i]
                if total + extra <= target and harm[k][i] - harm[k][j] > best_gain:
                    best, best_gain = (k, j), harm[k][i] - harm[k][j]
        if best is None:
            break
        k, j = best
        total += price[k][j] - price[k][choice[k]]
        choice[k] = j
    layers = {}
    why = f"{method} allocation for {budget.kind} {budget.fraction}"
    for k, i in choice.items():
        rank = options[k][i]
        values = eig[k][0]
        kept = 1.0 - discarded(values, rank, True) if float(values.sum()) > 0 else 1.0
        layers[k] = LayerRank(rank, *shapes[k], kept, f"{why}, predicted damage {harm[k][i]:.3g}" if rank
                              else f"dense ({why})")
    return RankPlan(layers, method=f"{method} allocation, {budget.kind} {budget.fraction}")
