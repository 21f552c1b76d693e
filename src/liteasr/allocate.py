"""Budget-driven rank allocation: meet a parameter or FLOP target while minimizing predicted damage.

Each projection has candidate ranks (multiples of `rank_multiple` below the size where factoring
stops paying, plus dense). Starting from dense everywhere, we repeatedly lower the rank of the
projection whose next step costs the least predicted damage per parameter (or FLOP) saved, until
the budget is met. Damage models:

- `variance`:    discarded output variance, absolute (the paper's signal, compared across layers)
- `normalized`:  discarded fraction of each layer's output variance
- `sensitivity`: normalized discard scaled by a measured, per-layer sensitivity: the relative
                 change of the encoder output when that layer alone is truncated (no labels needed)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from . import whisper
from .errors import UserError
from .lowrank import factorize
from .plan import LayerRank, RankPlan

DAMAGE_MODELS = ("variance", "normalized", "sensitivity")


@dataclass(frozen=True)
class Budget:
    kind: str  # "params" (encoder linear parameters kept) or "flops" (encoder FLOPs kept)
    fraction: float

    def __post_init__(self):
        if self.kind not in ("params", "flops"):
            raise UserError(f"budget kind must be params or flops, got {self.kind}")
        if not 0 < self.fraction <= 1:
            raise UserError(f"target fraction must be in (0, 1], got {self.fraction}")


def candidates(d_in: int, d_out: int, multiple: int) -> list[int | None]:
    """Ranks worth considering, ascending; None (dense) last."""
    return [r for r in range(multiple, min(d_in, d_out) + 1, multiple) if r * (d_in + d_out) < d_in * d_out] + [None]


def cost(kind: str, d_in: int, d_out: int, rank: int | None, frames: int) -> int:
    """Parameters (weights + bias) or FLOPs of one projection at `rank`."""
    inner = d_in * d_out if rank is None else rank * (d_in + d_out)
    return inner + d_out if kind == "params" else 2 * frames * inner


def discarded(eigenvalues: torch.Tensor, rank: int | None, normalized: bool) -> float:
    if rank is None:
        return 0.0
    tail = float(eigenvalues[rank:].sum())
    total = float(eigenvalues.sum())
    return tail / total if normalized else tail


def measure_sensitivity(loaded: whisper.LoadedModel, stats, eig, features: torch.Tensor,
                        probe: float = 0.99, multiple: int = 16, progress: bool = True) -> dict[str, float]:
    """Per projection: relative encoder-output error when only it is truncated, per unit of discarded
    fraction of its variance (probed at the rank keeping `probe` of the variance)."""
    model = copy.deepcopy(loaded.model)
    linears = whisper.encoder_linears(model)
    reference = whisper.encoder_output(model, features)
    scale = float((reference - reference.mean((0, 1))).pow(2).sum())
    sensitivity = {}
    for key, dense in tqdm(linears.items(), desc="measuring sensitivity", disable=not progress):
        values, vectors = eig[key]
        ranks = [r for r in candidates(dense.in_features, dense.out_features, multiple) if r is not None]
        explained = values.cumsum(0) / values.sum().clamp_min(1e-300)
        rank = next((r for r in ranks if explained[r - 1] >= probe), ranks[-1] if ranks else None)
        if rank is None:
            sensitivity[key] = 0.0
            continue
        whisper.replace_linear(model, key, factorize(dense, stats.layers[key].mean, vectors, rank))
        error = float((whisper.encoder_output(model, features) - reference).pow(2).sum()) / scale
        whisper.replace_linear(model, key, dense)
        sensitivity[key] = error / max(discarded(values, rank, True), 1e-12)
    return sensitivity


def allocate(eig: dict, shapes: dict[str, tuple[int, int]], budget: Budget, damage: str = "normalized",
             sensitivity: dict[str, float] | None = None, multiple: int = 16, frames: int = 1500,
             fixed_flops: int = 0) -> RankPlan:
    """Greedy marginal allocation (see module docstring). `fixed_flops`: FLOPs outside the projections
    (attention, conv), counted in a FLOP budget but not reducible here."""
    if damage not in DAMAGE_MODELS:
        raise UserError(f"damage model must be one of {', '.join(DAMAGE_MODELS)}, got {damage!r}")
    if damage == "sensitivity" and sensitivity is None:
        raise UserError("the sensitivity damage model needs calibration audio (use --calibration, not --stats)")
    if multiple <= 0:
        raise UserError(f"rank multiple must be positive, got {multiple}")

    def harm(key, rank):
        values = eig[key][0]
        if damage == "variance":
            return discarded(values, rank, False)
        d = discarded(values, rank, True)
        return d * sensitivity[key] if damage == "sensitivity" else d

    options = {k: candidates(*shapes[k], multiple) for k in shapes}
    choice = {k: len(o) - 1 for k, o in options.items()}  # start dense
    price = lambda k, i: cost(budget.kind, *shapes[k], options[k][i], frames)  # noqa: E731
    full = sum(price(k, i) for k, i in choice.items()) + (fixed_flops if budget.kind == "flops" else 0)
    target = budget.fraction * full
    total = full
    while total > target:
        best, best_ratio = None, float("inf")
        for k, i in choice.items():
            if i == 0:
                continue
            saved = price(k, i) - price(k, i - 1)
            ratio = (harm(k, options[k][i - 1]) - harm(k, options[k][i])) / max(saved, 1)
            if ratio < best_ratio:
                best, best_ratio = k, ratio
        if best is None:
            raise UserError(f"target {budget.kind} {budget.fraction} cannot be met: the smallest ranks keep "
                            f"{total / full:.3f} of the encoder {budget.kind}")
        total -= price(best, choice[best]) - price(best, choice[best] - 1)
        choice[best] -= 1
    layers = {}
    for k, i in choice.items():
        rank = options[k][i]
        values = eig[k][0]
        kept = 1.0 - discarded(values, rank, True) if float(values.sum()) > 0 else 1.0
        why = f"{damage} allocation for {budget.kind} {budget.fraction}"
        layers[k] = LayerRank(rank, *shapes[k], kept, why if rank else f"dense ({why})")
    return RankPlan(layers, method=f"{damage} allocation, {budget.kind} {budget.fraction}")
