"""Encoder size and compute per 30 s window, split into linear / attention / conv."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from . import whisper
from .hf.modeling_lite_whisper import LowRankLinear


@dataclass
class EncoderCost:
    params: int  # every encoder parameter
    linear_params: int  # the projections liteasr compresses
    linear_flops: int
    attention_flops: int
    conv_flops: int

    @property
    def flops(self) -> int:
        return self.linear_flops + self.attention_flops + self.conv_flops

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def projection_cost(module: nn.Module, frames: int, dense: bool = False) -> tuple[int, int]:
    """(parameters, FLOPs for `frames` rows) of a projection; `dense` prices a low-rank one as its dense original."""
    if isinstance(module, LowRankLinear) and dense:
        return module.in_features * module.out_features + module.out_features, \
            2 * frames * module.in_features * module.out_features
    if isinstance(module, LowRankLinear):
        return module.rank * (module.in_features + module.out_features) + module.out_features, \
            2 * frames * module.rank * (module.in_features + module.out_features)
    return module.weight.numel() + (0 if module.bias is None else module.bias.numel()), \
        2 * frames * module.in_features * module.out_features


def encoder_cost(model: nn.Module, dense: bool = False) -> EncoderCost:
    """Cost per 30 s window; `dense=True` prices the uncompressed original of a lite model."""
    encoder = model.model.encoder
    frames = encoder.config.max_source_positions  # 1500 frames per 30 s window
    d = encoder.config.d_model
    linear_params = linear_flops = 0
    for module in whisper.encoder_linears(model).values():
        p, f = projection_cost(module, frames, dense)
        linear_params, linear_flops = linear_params + p, linear_flops + f
    attention = len(encoder.layers) * 4 * frames * frames * d  # Q K^T and P V
    c1, c2 = encoder.conv1, encoder.conv2
    conv = 2 * (2 * frames) * c1.weight[0].numel() * c1.out_channels + 2 * frames * c2.weight[0].numel() * c2.out_channels
    other = sum(p.numel() for p in encoder.parameters()) - sum(
        projection_cost(m, frames)[0] for m in whisper.encoder_linears(model).values())
    return EncoderCost(other + linear_params, linear_params, linear_flops, attention, conv)
