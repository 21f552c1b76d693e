"""Rank plans: which rank each encoder projection gets, and why (statistics -> plan).

A plan is data: it can be printed, saved as JSON, edited and applied again.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from liteasr.atomic import atomic_file
from liteasr.errors import UserError


@dataclass
class LayerRank:
    rank: int | None  # None: the projection stays dense
    in_features: int
    out_features: int
    explained: float  # fraction of output variance kept at this rank (1.0 when dense)
    reason: str

    @property
    def params(self) -> int:
        if self.rank is None:
            return self.in_features * self.out_features + self.out_features
        return self.rank * (self.in_features + self.out_features) + self.out_features


@dataclass
class RankPlan:
    layers: dict[str, LayerRank]  # key "layers.{i}.{projection}"
    method: str = "threshold"

    def ranks(self) -> dict[str, int | None]:
        return {k: v.rank for k, v in self.layers.items()}

    def dense_params(self) -> int:
        return sum(l.in_features * l.out_features + l.out_features for l in self.layers.values())

    def kept_fraction(self) -> float:
        """Linear parameters (weights and biases) kept, as a fraction of the dense layers'."""
        return sum(l.params for l in self.layers.values()) / self.dense_params()

    def table(self) -> str:
        """Human-readable plan: one row per projection, with totals."""
        rows = [f"rank plan: {self.method}", f"{'layer':<18}{'shape':>12}{'rank':>7}{'kept var':>10}{'params':>10}  why"]
        for key, l in self.layers.items():
            rank = "dense" if l.rank is None else str(l.rank)
            rows.append(f"{key:<18}{f'{l.in_features}x{l.out_features}':>12}{rank:>7}{l.explained:>10.5f}"
                        f"{l.params:>10,}  {l.reason}")
        kept = sum(l.params for l in self.layers.values())
        rows.append(f"linear parameters kept: {kept:,} of {self.dense_params():,} ({self.kept_fraction():.1%})")
        return "\n".join(rows)

    def to_json(self) -> str:
        return json.dumps({"method": self.method, "layers": {k: asdict(v) for k, v in self.layers.items()}}, indent=1)

    def save(self, path: str | Path) -> None:
        with atomic_file(path) as tmp:
            tmp.write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "RankPlan":
        try:
            data = json.loads(Path(path).read_text())
            layers = {k: LayerRank(**v) for k, v in data["layers"].items()}
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: not a rank plan ({exc})") from None
        for key, layer in layers.items():
            if layer.rank is not None and not 0 < layer.rank <= min(layer.in_features, layer.out_features):
                raise UserError(f"{path}: {key} has rank {layer.rank}, outside 1..{min(layer.in_features, layer.out_features)}")
        return cls(layers, data.get("method", "file"))


@dataclass(frozen=True)
class ThresholdRule:
    """The paper's rule: smallest multiple of `rank_multiple` whose explained variance reaches the threshold."""

    attention: float = 0.99
    mlp: float = 0.999
    rank_multiple: int = 16

    def __post_init__(self):
        for t in (self.attention, self.mlp):
            if not 0 < t <= 1:
                raise UserError(f"threshold must be in (0, 1], got {t}")
        if self.rank_multiple <= 0:
            raise UserError(f"rank multiple must be positive, got {self.rank_multiple}")

    @classmethod
    def parse(cls, text: str, rank_multiple: int = 16) -> "ThresholdRule":
        """`A:M` (attention:MLP) or a single value for both."""
        try:
            parts = [float(p) for p in text.split(":")]
        except ValueError:
            raise UserError(f"--threshold must be a number or A:M, got {text!r}") from None
        if len(parts) not in (1, 2):
            raise UserError(f"--threshold must be a number or A:M, got {text!r}")
        return cls(parts[0], parts[-1], rank_multiple)

    def rank_for(self, eigenvalues: torch.Tensor, threshold: float) -> tuple[int, float]:
        """(rank, explained variance at that rank) for one projection's descending eigenvalues."""
        d = eigenvalues.numel()
        total = float(eigenvalues.sum())
        if total <= 0:  # constant outputs: the mean (folded into the bias) is all there is
            return min(self.rank_multiple, d), 1.0
        explained = (eigenvalues.cumsum(0) / total).clamp(max=1.0)
        needed = int(torch.searchsorted(explained, torch.tensor(threshold - 1e-12, dtype=explained.dtype))) + 1
        rank = min(d, math.ceil(needed / self.rank_multiple) * self.rank_multiple)
        return rank, float(explained[rank - 1])

    def plan(self, spectra: dict[str, torch.Tensor], shapes: dict[str, tuple[int, int]],
             is_attention) -> RankPlan:
        layers = {}
        for key, eigenvalues in spectra.items():
            d_in, d_out = shapes[key]
            threshold = self.attention if is_attention(key) else self.mlp
            rank, explained = self.rank_for(eigenvalues, threshold)
            if rank * (d_in + d_out) >= d_in * d_out:
                layers[key] = LayerRank(None, d_in, d_out, 1.0, f"dense: rank {rank} for {threshold} would not shrink it")
            else:
                layers[key] = LayerRank(rank, d_in, d_out, explained, f"explained variance {explained:.5f} >= {threshold}")
        return RankPlan(layers, method=f"threshold {self.attention}:{self.mlp}")
