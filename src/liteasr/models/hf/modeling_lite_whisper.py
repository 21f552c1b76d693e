"""A Whisper whose encoder linear layers may be replaced by two thin matrices.

Same parameter names and config schema as the public `efficient-speech/lite-whisper-*`
checkpoints: `...fc1.weight1` [in, r], `...fc1.weight2` [r, out], `...fc1.bias` [out].
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import WhisperForConditionalGeneration

from .configuration_lite_whisper import LiteWhisperConfig

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


class LowRankLinear(nn.Module):
    """y = (x @ weight1) @ weight2 + bias, the factored form of a dense nn.Linear."""

    def __init__(self, in_features: int, out_features: int, rank: int):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.weight1 = nn.Parameter(torch.empty(in_features, rank))
        self.weight2 = nn.Parameter(torch.empty(rank, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight1.is_meta:  # from_pretrained builds on the meta device and loads real values
            return
        nn.init.normal_(self.weight1, std=self.in_features**-0.5)
        nn.init.normal_(self.weight2, std=self.rank**-0.5)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, (x @ self.weight1).flatten(0, -2), self.weight2).view(*x.shape[:-1], -1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def _wide(t: torch.Tensor) -> torch.Tensor:
    """Products of weights are formed one precision up (float64 for float32, float32 for half
    types): they are small, and rounding them twice would cost exactness for nothing."""
    return t.double() if t.dtype == torch.float32 else t.float()


class LiteEncoderAttention(nn.Module):
    """Encoder self-attention over low-rank q/k/v, optionally computed in the factor dimensions.

    First stages of q/k/v read the same input and run as one GEMM. Then, per head h:
      scores: q_h k_h^T = (Q1 M_h + u_h) K1^T + (terms constant along keys, which cancel in softmax),
              M_h = W2_q[:, h] W2_k[:, h]^T, u_h = W2_k[:, h] b_q[h]; keys K1 are shared by all heads
              (multi-query attention of width r_k), so it runs on scaled_dot_product_attention.
      values: P_h (V1 W2_v[:, h] + b_v[h]) = (P_h V1) W2_v[:, h] + b_v[h] (softmax rows sum to 1), and
              W2_v[:, h] is merged with the matching rows of out_proj.
    `reduce_scores` / `reduce_values` pick the reduced form of each half (it saves FLOPs only when the
    rank is below the head dimension); with both False this is standard attention on the fused first stage.
    """

    def __init__(self, attn: nn.Module, reduce_scores: bool = False, reduce_values: bool = False):
        super().__init__()
        self.num_heads, self.head_dim = attn.num_heads, attn.head_dim
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj
        self.reduce_scores, self.reduce_values = reduce_scores, reduce_values
        self._cache = (None, None)

    def _weights(self) -> dict:
        """Weight products the forward needs, rebuilt only when a parameter changes (not per call).
        While gradients flow (healing the factors), they are rebuilt on every call instead, so that
        every factor, the fused q/k/v first stage included, receives its gradient."""
        params = tuple(self.parameters())
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            return self._build()
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
        if self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self._build())
        return self._cache[1]

    def _build(self) -> dict:
        h, dh = self.num_heads, self.head_dim
        q, k, v, o = self.q_proj, self.k_proj, self.v_proj, self.out_proj
        dtype = q.weight1.dtype
        w = {"first": torch.cat([q.weight1, k.weight1, v.weight1], 1).contiguous()}
        wq2, wk2 = _wide(q.weight2).view(q.rank, h, dh), _wide(k.weight2).view(k.rank, h, dh)
        w["m"] = torch.einsum("qhd,khd->hqk", wq2, wk2).to(dtype).unsqueeze(0)  # [1, H, r_q, r_k]
        w["u"] = torch.einsum("khd,hd->hk", wk2, _wide(q.bias).view(h, dh)).to(dtype)[None, :, None, :]
        # W2_v per head merged with out_proj's input rows: one GEMM from H*r_v to out_proj's inner width.
        w_in = o.weight1 if isinstance(o, LowRankLinear) else o.weight.T
        wv2 = _wide(v.weight2).view(v.rank, h, dh)
        w["merged"] = torch.einsum("vhd,hdo->hvo", wv2, _wide(w_in).reshape(h, dh, -1)).reshape(h * v.rank, -1).to(dtype)
        w["merged_bias"] = (_wide(v.bias) @ _wide(w_in)).to(dtype)
        return w

    def forward(self, hidden_states: torch.Tensor, attention_mask=None, **kwargs):
        b, t, d = hidden_states.shape
        h, dh = self.num_heads, self.head_dim
        q, k, v, o = self.q_proj, self.k_proj, self.v_proj, self.out_proj
        w = self._weights()
        q1, k1, v1 = (hidden_states @ w["first"]).split([q.rank, k.rank, v.rank], dim=-1)
        if self.reduce_scores:
            query = torch.matmul(q1.unsqueeze(1), w["m"]) + w["u"]  # [B, H, T, r_k]
            key = k1.unsqueeze(1)  # [B, 1, T, r_k], shared by all heads
        else:
            query = torch.addmm(q.bias, q1.flatten(0, 1), q.weight2).view(b, t, h, dh).transpose(1, 2)
            key = torch.addmm(k.bias, k1.flatten(0, 1), k.weight2).view(b, t, h, dh).transpose(1, 2)
        if self.reduce_values:
            value = v1.unsqueeze(1)  # [B, 1, T, r_v]
        else:
            value = torch.addmm(v.bias, v1.flatten(0, 1), v.weight2).view(b, t, h, dh).transpose(1, 2)
        # The fused SDPA kernels need one width for q, k and v: zero columns change neither the
        # scores (q.k) nor the kept outputs (extra value columns come out zero and are dropped).
        width_v = value.shape[-1]
        width = max(query.shape[-1], width_v)
        query, key, value = (F.pad(x, (0, width - x.shape[-1])) if x.shape[-1] < width else x
                             for x in (query, key, value))
        key, value = key.expand(b, h, t, width), value.expand(b, h, t, width)  # shared across heads
        out = F.scaled_dot_product_attention(query, key, value, scale=dh**-0.5)[..., :width_v]
        out = out.transpose(1, 2).reshape(b * t, -1)
        if not self.reduce_values:
            return o(out.view(b, t, d)), None
        y = torch.addmm(w["merged_bias"], out, w["merged"])
        if isinstance(o, LowRankLinear):
            y = torch.addmm(o.bias, y, o.weight2)
        elif o.bias is not None:
            y = y + o.bias
        return y.view(b, t, -1), None


def projection_parent(layer: nn.Module, name: str) -> nn.Module:
    """The module that owns projection `name` in a Whisper encoder layer."""
    return layer.self_attn if name in ("q_proj", "k_proj", "v_proj", "out_proj") else layer


def apply_low_rank_config(encoder_layers: nn.ModuleList, low_rank_config) -> None:
    """Swap every projection named in `low_rank_config` for an (uninitialized) LowRankLinear."""
    for layer, ranks in zip(encoder_layers, low_rank_config or []):
        for name, rank in (ranks or {}).items():
            parent = projection_parent(layer, name)
            dense = getattr(parent, name)
            setattr(parent, name, LowRankLinear(dense.in_features, dense.out_features, int(rank)))


def set_attention_modes(encoder_layers: nn.ModuleList, modes) -> None:
    """Per layer {"scores": bool, "values": bool}; layers whose q/k/v are all low-rank get LiteEncoderAttention."""
    for layer, mode in zip(encoder_layers, modes or [None] * len(encoder_layers)):
        attn = layer.self_attn
        if not all(isinstance(getattr(attn, n), LowRankLinear) for n in ("q_proj", "k_proj", "v_proj")):
            continue
        mode = mode or {}
        if isinstance(attn, LiteEncoderAttention):
            attn.reduce_scores, attn.reduce_values = bool(mode.get("scores")), bool(mode.get("values"))
        else:
            layer.self_attn = LiteEncoderAttention(attn, bool(mode.get("scores")), bool(mode.get("values")))


class LiteWhisperForConditionalGeneration(WhisperForConditionalGeneration):
    config_class = LiteWhisperConfig

    def __init__(self, config: LiteWhisperConfig):
        super().__init__(config)
        apply_low_rank_config(self.model.encoder.layers, config.low_rank_config)
        set_attention_modes(self.model.encoder.layers, getattr(config, "attention_modes", None))

    def _init_weights(self, module):
        if isinstance(module, LowRankLinear):
            module.reset_parameters()
        else:
            super()._init_weights(module)
