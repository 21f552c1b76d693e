"""Factor a dense projection into two thin matrices using its output principal components.

y = W x + b  ~  V (V^T W) x + mu + V V^T (b - mu),  V = top-k eigenvectors of Cov(y).
"""

from __future__ import annotations

import torch
from torch import nn

from liteasr.models.hf.modeling_lite_whisper import LowRankLinear


def product(module: LowRankLinear) -> torch.Tensor:
    """weight1 @ weight2 ([in, out], float64, detached): the dense weight a factored projection applies."""
    return module.weight1.detach().double() @ module.weight2.detach().double()


def factorize(linear: nn.Linear, mean: torch.Tensor, vectors: torch.Tensor, rank: int) -> LowRankLinear:
    """LowRankLinear of `rank` from eigenvectors (columns of `vectors`, descending) of the output covariance."""
    w = linear.weight.detach()
    b = linear.bias.detach() if linear.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
    return factor_weights(w, b, mean, vectors, rank, dtype=w.dtype, device=w.device)


def factor_weights(weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, vectors: torch.Tensor, rank: int,
                   dtype=torch.float32, device="cpu") -> LowRankLinear:
    """LowRankLinear of `rank` approximating y = weight x + bias, whose outputs have mean `mean` and
    principal directions `vectors` (columns, descending)."""
    w = weight.to(torch.float64).cpu()  # [out, in]
    b = bias.to(torch.float64).cpu()
    v = vectors[:, :rank].to(torch.float64).cpu()  # [out, r]
    mu = mean.to(torch.float64).cpu()
    module = LowRankLinear(w.shape[1], w.shape[0], rank).to(dtype=dtype)
    with torch.no_grad():
        module.weight1.copy_(w.T @ v)  # [in, r] = (V^T W)^T
        module.weight2.copy_(v.T)  # [r, out]
        module.bias.copy_(mu + v @ (v.T @ (b - mu)))  # bias folded exactly
    return module.to(device)
