"""Factor a dense projection into two thin matrices using its output principal components.

y = W x + b  ~  V (V^T W) x + mu + V V^T (b - mu),  V = top-k eigenvectors of Cov(y).
"""

from __future__ import annotations

import torch
from torch import nn

from .hf.modeling_lite_whisper import LowRankLinear


def factorize(linear: nn.Linear, mean: torch.Tensor, vectors: torch.Tensor, rank: int) -> LowRankLinear:
    """LowRankLinear of `rank` from eigenvectors (columns of `vectors`, descending) of the output covariance."""
    dtype, device = linear.weight.dtype, linear.weight.device
    w = linear.weight.detach().to(torch.float64).cpu()  # [out, in]
    b = linear.bias.detach().to(torch.float64).cpu() if linear.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    v = vectors[:, :rank].to(torch.float64).cpu()  # [out, r]
    mu = mean.to(torch.float64).cpu()
    module = LowRankLinear(linear.in_features, linear.out_features, rank).to(dtype=dtype)
    with torch.no_grad():
        module.weight1.copy_(w.T @ v)  # [in, r] = (V^T W)^T
        module.weight2.copy_(v.T)  # [r, out]
        module.bias.copy_(mu + v @ (v.T @ (b - mu)))  # bias folded exactly
    return module.to(device)
