"""Encoder size and compute per 30 s window, split into linear / attention / conv."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from liteasr.models import whisper
from liteasr.models.hf.modeling_lite_whisper import LowRankLinear


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


def projection_cost(module: nn.Module, frames: int, dense: bool = False, dense_bias: bool = True) -> tuple[int, int]:
    """(parameters, FLOPs for `frames` rows) of a projection; `dense` prices a low-rank one as its dense original
    (with a bias when `dense_bias`)."""
    if isinstance(module, LowRankLinear) and dense:
        return module.in_features * module.out_features + module.out_features * dense_bias, \
            2 * frames * module.in_features * module.out_features
    if isinstance(module, LowRankLinear):
        return module.rank * (module.in_features + module.out_features) + module.out_features, \
            2 * frames * module.rank * (module.in_features + module.out_features)
    return module.weight.numel() + (0 if module.bias is None else module.bias.numel()), \
        2 * frames * module.in_features * module.out_features


def attention_cost(attn: nn.Module, frames: int, scores: bool, values: bool, dense: bool = False) -> tuple[int, int]:
    """(linear FLOPs, attention FLOPs) of one encoder self-attention block in the given mode."""
    q, k, v, o = attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj
    h = attn.num_heads
    d = h * attn.head_dim
    t = frames
    if dense or not all(isinstance(m, LowRankLinear) for m in (q, k, v)):
        scores = values = False
    linear = 0
    if scores:
        linear += 2 * t * d * (q.rank + k.rank) + 2 * t * h * q.rank * k.rank  # first stages, Q1 M_h
    else:
        linear += projection_cost(q, t, dense)[1] + projection_cost(k, t, dense)[1]
    if values:
        inner = o.rank if isinstance(o, LowRankLinear) and not dense else d
        linear += 2 * t * d * v.rank + 2 * t * h * v.rank * inner + (2 * t * inner * d if inner != d else 0)
    else:
        linear += projection_cost(v, t, dense)[1] + projection_cost(o, t, dense)[1]
    # Per head, q/k and v share one (zero-padded) width so the fused attention kernels apply.
    width = max(k.rank if scores else attn.head_dim, v.rank if values else attn.head_dim)
    attention = 2 * 2 * t * t * h * width  # Q K^T and P V
    return linear, attention


def best_attention_modes(model: nn.Module) -> list[dict[str, bool]]:
    """Per layer, the reduced/standard choice for scores and values with the fewest FLOPs."""
    encoder = model.model.encoder
    frames = encoder.config.max_source_positions
    modes = []
    for layer in encoder.layers:
        options = [(sum(attention_cost(layer.self_attn, frames, s, v)), {"scores": s, "values": v})
                   for s in (False, True) for v in (False, True)]
        modes.append(min(options, key=lambda o: o[0])[1])  # ties keep the standard path (listed first)
    return modes


def current_modes(model: nn.Module) -> list[tuple[bool, bool]]:
    return [(bool(getattr(l.self_attn, "reduce_scores", False)), bool(getattr(l.self_attn, "reduce_values", False)))
            for l in model.model.encoder.layers]


def encoder_cost(model: nn.Module, dense: bool = False, frames: int | None = None) -> EncoderCost:
    """Cost per 30 s window (or per window of `frames` encoder frames) in the model's current attention
    modes; `dense=True` prices the uncompressed original of a lite model."""
    encoder = model.model.encoder
    frames = frames or encoder.config.max_source_positions  # 1500 frames per 30 s window
    linear_params = linear_flops = attention = 0
    for key, module in whisper.encoder_linears(model).items():
        linear_params += projection_cost(module, frames, dense, whisper.split_key(key)[1] not in whisper.WITHOUT_BIAS)[0]
    for layer, (s, v) in zip(encoder.layers, current_modes(model)):
        lin, att = attention_cost(layer.self_attn, frames, s, v, dense)
        linear_flops += lin + projection_cost(layer.fc1, frames, dense)[1] + projection_cost(layer.fc2, frames, dense)[1]
        attention += att
    c1, c2 = encoder.conv1, encoder.conv2
    conv = 2 * (2 * frames) * c1.weight[0].numel() * c1.out_channels + 2 * frames * c2.weight[0].numel() * c2.out_channels
    other = sum(p.numel() for p in encoder.parameters()) - sum(
        projection_cost(m, frames)[0] for m in whisper.encoder_linears(model).values())
    return EncoderCost(other + linear_params, linear_params, linear_flops, attention, conv)
