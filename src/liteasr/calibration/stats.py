"""Calibration statistics: per encoder projection, count / sum / sum of outer products of its outputs.

Memory is d_out^2 per layer whatever the number of clips (the original LiteASR kept every
activation). Everything accumulates in float64, regardless of the model's dtype, so sums
over many clips neither overflow nor lose the small eigenvalues.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from liteasr.atomic import atomic_file
from liteasr.errors import UserError

STATS_FORMAT = "liteasr-stats/1"


@dataclass
class LayerStats:
    count: int
    sum: torch.Tensor  # [d] float64
    outer: torch.Tensor  # [d, d] float64, sum of y y^T

    @classmethod
    def empty(cls, dim: int, device="cpu") -> "LayerStats":
        return cls(0, torch.zeros(dim, dtype=torch.float64, device=device),
                   torch.zeros(dim, dim, dtype=torch.float64, device=device))

    def add(self, outputs: torch.Tensor) -> None:
        y = outputs.reshape(-1, outputs.shape[-1]).to(torch.float64)
        self.count += y.shape[0]
        self.sum += y.sum(0)
        self.outer.addmm_(y.T, y)

    def packed(self) -> torch.Tensor:
        """count, sum and outer in one float64 vector (one message per layer between processes)."""
        return torch.cat([torch.tensor([float(self.count)], dtype=torch.float64, device=self.sum.device),
                          self.sum, self.outer.flatten()])

    @classmethod
    def from_packed(cls, packed: torch.Tensor, dim: int) -> "LayerStats":
        return cls(int(packed[0].item()), packed[1 : dim + 1].clone(), packed[dim + 1 :].reshape(dim, dim).clone())

    def merged(self, other: "LayerStats") -> "LayerStats":
        return LayerStats(self.count + other.count, self.sum + other.sum, self.outer + other.outer)

    @property
    def mean(self) -> torch.Tensor:
        return self.sum / self.count

    @property
    def covariance(self) -> torch.Tensor:
        mu = self.mean
        cov = self.outer / self.count - torch.outer(mu, mu)
        return (cov + cov.T) / 2  # exact symmetry for eigh

    def spectrum(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eigenvalues (descending, clamped at 0) and matching eigenvectors (columns) of the covariance."""
        values, vectors = torch.linalg.eigh(self.covariance)
        return values.flip(0).clamp_min(0), vectors.flip(1)


@dataclass
class CovarianceStats:
    layers: dict[str, LayerStats]
    meta: dict = field(default_factory=dict)  # model fingerprint, clips, ...

    def merge(self, other: "CovarianceStats") -> "CovarianceStats":
        if self.layers.keys() != other.layers.keys():
            raise UserError("cannot merge statistics of different layer sets")
        if self.meta.get("model_hash") != other.meta.get("model_hash"):
            raise UserError("cannot merge statistics collected on different models")
        meta = dict(self.meta, clips=self.meta.get("clips", 0) + other.meta.get("clips", 0),
                    windows=self.meta.get("windows", 0) + other.meta.get("windows", 0),
                    clip_hashes=sorted(set(self.meta.get("clip_hashes", [])) | set(other.meta.get("clip_hashes", []))))
        return CovarianceStats({k: v.merged(other.layers[k]) for k, v in self.layers.items()}, meta)

    def save(self, path: str | Path, overwrite: bool = True) -> None:
        tensors = {}
        for key, s in self.layers.items():
            tensors[f"{key}.sum"] = s.sum.cpu().contiguous()
            tensors[f"{key}.outer"] = s.outer.cpu().contiguous()
            tensors[f"{key}.count"] = torch.tensor([s.count], dtype=torch.int64)
        meta = {"format": STATS_FORMAT, "meta": json.dumps(self.meta)}
        with atomic_file(path, overwrite=overwrite) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> "CovarianceStats":
        try:
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
                if header.get("format") != STATS_FORMAT:
                    raise UserError(f"{path}: not a liteasr statistics file")
                keys = {k.rsplit(".", 1)[0] for k in f.keys()}
                layers = {k: LayerStats(int(f.get_tensor(f"{k}.count")[0]), f.get_tensor(f"{k}.sum"),
                                        f.get_tensor(f"{k}.outer")) for k in sorted(keys)}
        except (OSError, ValueError) as exc:  # SafetensorError is not a stable public type
            raise UserError(f"{path}: cannot read statistics ({exc})") from None
        except Exception as exc:
            if type(exc).__name__ == "SafetensorError":
                raise UserError(f"{path}: not a valid safetensors file ({exc})") from None
            raise
        return cls(layers, json.loads(header.get("meta", "{}")))


class StatsCollector:
    """Forward hooks that add each projection's outputs to its LayerStats."""

    def __init__(self, modules: dict[str, torch.nn.Module]):
        self.stats = {k: LayerStats.empty(m.out_features, device=_device_of(m)) for k, m in modules.items()}
        self._handles = [m.register_forward_hook(self._hook(k)) for k, m in modules.items()]

    def _hook(self, key):
        def hook(module, inputs, output):
            if not torch.isfinite(output).all():
                raise UserError(f"non-finite activations at encoder {key} (NaN/Inf): check the audio or the model dtype")
            self.stats[key].add(output.detach())
        return hook

    def close(self) -> dict[str, LayerStats]:
        for h in self._handles:
            h.remove()
        return {k: LayerStats(s.count, s.sum.cpu(), s.outer.cpu()) for k, s in self.stats.items()}


def _device_of(module: torch.nn.Module):
    return next(module.parameters()).device
