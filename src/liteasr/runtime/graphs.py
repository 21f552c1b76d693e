"""The encoder and decoder as plain PyTorch modules written for export: the graphs ONNX Runtime runs.

They read the weights of a loaded (lite-)Whisper and spell out every matrix product, so the exported
graph is exactly what we chose: factored projections as two thin MatMuls (or their product where the
rank is too high to pay), reduced-dimension attention as broadcast MatMuls in multi-query form (no
padding or expanding keys per head), and a decoder that returns its key/value cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from liteasr.factorize.lowrank import product
from liteasr.models.hf.modeling_lite_whisper import LiteEncoderAttention, LowRankLinear

# A factored projection runs as two MatMuls; each costs a pass over the activations (and, in int8, a
# dynamic quantization of its input). Below this fraction of the dense FLOPs the saving pays for that.
FUSE_ABOVE = 0.75


def _const(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().float().contiguous(), requires_grad=False)


def pays(module: nn.Module, fuse_above: float = FUSE_ABOVE) -> bool:
    """Whether a projection stays factored in the graph: low rank, and cheap enough against dense."""
    if not isinstance(module, LowRankLinear):
        return False
    return module.rank * (module.in_features + module.out_features) < fuse_above * module.in_features * module.out_features


class Projection(nn.Module):
    """x @ w1 (@ w2) + b: one MatMul for dense (or fused) weights, two for a factored one."""

    def __init__(self, module: nn.Module, fuse_above: float = FUSE_ABOVE):
        super().__init__()
        if isinstance(module, LowRankLinear) and pays(module, fuse_above):
            self.w1, self.w2 = _const(module.weight1), _const(module.weight2)
        elif isinstance(module, LowRankLinear):
            self.w1, self.w2 = _const(product(module)), None
        else:
            self.w1, self.w2 = _const(module.weight.T), None
        self.b = None if module.bias is None else _const(module.bias)
        self.fused = isinstance(module, LowRankLinear) and self.w2 is None  # factored in the checkpoint only

    def forward(self, x):
        y = x @ self.w1
        if self.w2 is not None:
            y = y @ self.w2
        return y if self.b is None else y + self.b


class EncoderAttention(nn.Module):
    """Self-attention; for a LiteEncoderAttention in reduced mode, scores and/or values in factor space.

    Reduced scores: every head's query is Q1 (W2_q[:, h] W2_k[:, h]^T) + u_h against the shared keys K1,
    one [r_q, H*r_k] projection; reduced values: P_h V1 then W2_v merged with out_proj (see
    LiteEncoderAttention). Keys and values shared by all heads stay [B, 1, T, r] and broadcast in MatMul.
    """

    def __init__(self, attn: nn.Module, fuse_above: float = FUSE_ABOVE):
        super().__init__()
        self.heads, self.head_dim = attn.num_heads, attn.head_dim
        lite = isinstance(attn, LiteEncoderAttention)
        self.reduce_scores = lite and attn.reduce_scores
        self.reduce_values = lite and attn.reduce_values
        q, k, v, o = attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj
        if lite:
            w = attn._weights()
            h = self.heads
            # First stages of q/k/v in one MatMul; a projection whose rank does not pay (and is not needed
            # factored by a reduced half) joins it as its dense product instead, with no second stage.
            keep = {"q": self.reduce_scores or pays(q, fuse_above), "k": self.reduce_scores or pays(k, fuse_above),
                    "v": self.reduce_values or pays(v, fuse_above)}
            firsts, self.split = [], []
            for name, m in (("q", q), ("k", k), ("v", v)):
                first = m.weight1 if keep[name] else product(m)
                firsts.append(first.float())
                self.split.append(first.shape[1])
                second = m.weight2 if keep[name] else None
                bias = torch.zeros(m.out_features) if m.bias is None else m.bias
                setattr(self, f"{name}2", None if second is None else _const(second))
                setattr(self, f"{name}_bias", _const(bias))
            self.first = _const(torch.cat(firsts, 1))
            self.fused = [f"{n}_proj" for n, kept in keep.items() if not kept]
            if self.reduce_scores:  # [r_q, H * r_k]: every head's query in key-factor space
                self.query = _const(w["m"][0].permute(1, 0, 2).reshape(q.rank, h * k.rank))
                self.query_bias = _const(w["u"].reshape(h * k.rank))
            if self.reduce_values:
                self.merged, self.merged_bias = _const(w["merged"]), _const(w["merged_bias"])
                self.out2 = _const(o.weight2) if isinstance(o, LowRankLinear) else None
                self.out_bias = _const(o.bias)
            else:
                self.out = Projection(o, fuse_above)
        else:
            self.q, self.k, self.v, self.out = (Projection(m, fuse_above) for m in (q, k, v, o))
        self.lite = lite
        if not lite:
            self.fused = [f"{n}_proj" for n, p in zip("qkv", (self.q, self.k, self.v)) if p.fused]
        if hasattr(self, "out") and self.out.fused:
            self.fused.append("out_proj")

    def second(self, x, name):
        """Second stage of a factored q/k/v (or just its bias when the first stage was dense)."""
        w = getattr(self, f"{name}2")
        return (x if w is None else x @ w) + getattr(self, f"{name}_bias")

    def heads_first(self, x, width):
        b, t, _ = x.shape
        return x.reshape(b, t, -1, width).transpose(1, 2)

    def forward(self, x):
        dh = self.head_dim
        if not self.lite:
            q, k, v = self.heads_first(self.q(x), dh), self.heads_first(self.k(x), dh), self.heads_first(self.v(x), dh)
        else:
            q1, k1, v1 = (x @ self.first).split(self.split, dim=-1)
            if self.reduce_scores:
                q = self.heads_first(q1 @ self.query + self.query_bias, self.split[1])  # [B, H, T, r_k]
                k = k1.unsqueeze(1)  # [B, 1, T, r_k]
            else:
                q, k = self.heads_first(self.second(q1, "q"), dh), self.heads_first(self.second(k1, "k"), dh)
            v = v1.unsqueeze(1) if self.reduce_values else self.heads_first(self.second(v1, "v"), dh)
        weights = torch.softmax((q * dh**-0.5) @ k.transpose(-1, -2), dim=-1)
        out = weights @ v  # [B, H, T, r_v or head_dim]
        out = out.transpose(1, 2).flatten(2)
        if self.lite and self.reduce_values:
            y = out @ self.merged + self.merged_bias
            return (y @ self.out2 if self.out2 is not None else y) + self.out_bias
        return self.out(out)


class Encoder(nn.Module):
    """input_features [B, n_mels, 3000] -> last_hidden_state [B, 1500, d_model]."""

    def __init__(self, model: nn.Module, fuse_above: float = FUSE_ABOVE):
        super().__init__()
        enc = model.model.encoder
        self.conv1, self.conv2 = enc.conv1, enc.conv2
        self.positions = _const(enc.embed_positions.weight)
        self.layers = nn.ModuleList(EncoderLayer(layer, fuse_above) for layer in enc.layers)
        self.norm = enc.layer_norm

    def forward(self, input_features):
        x = F.gelu(self.conv2(F.gelu(self.conv1(input_features)))).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class EncoderLayer(nn.Module):
    def __init__(self, layer: nn.Module, fuse_above: float):
        super().__init__()
        self.attn_norm, self.attn = layer.self_attn_layer_norm, EncoderAttention(layer.self_attn, fuse_above)
        self.mlp_norm = layer.final_layer_norm
        self.fc1, self.fc2 = Projection(layer.fc1, fuse_above), Projection(layer.fc2, fuse_above)

    def forward(self, x):
        x = x + self.attn(self.attn_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_norm(x))))


def fused_projections(encoder: Encoder) -> list[str]:
    """Names of the factored projections the graph runs as one dense MatMul (rank too high to pay)."""
    return [f"layers.{i}.{name}" for i, layer in enumerate(encoder.layers)
            for name in layer.attn.fused + [n for n in ("fc1", "fc2") if getattr(layer, n).fused]]


class DecoderLayer(nn.Module):
    def __init__(self, layer: nn.Module):
        super().__init__()
        sa, ca = layer.self_attn, layer.encoder_attn
        self.heads = sa.num_heads
        self.scale = sa.head_dim**-0.5
        self.self_norm, self.cross_norm, self.mlp_norm = layer.self_attn_layer_norm, layer.encoder_attn_layer_norm, layer.final_layer_norm
        self.sq, self.sk, self.sv, self.so = sa.q_proj, sa.k_proj, sa.v_proj, sa.out_proj
        self.cq, self.ck, self.cv, self.co = ca.q_proj, ca.k_proj, ca.v_proj, ca.out_proj
        self.fc1, self.fc2 = layer.fc1, layer.fc2

    def split(self, x):
        b, t, _ = x.shape
        return x.reshape(b, t, self.heads, -1).transpose(1, 2)

    def cross_cache(self, encoded):
        return self.split(self.ck(encoded)), self.split(self.cv(encoded))

    def attend(self, q, k, v, mask=None):
        """Attention output [B, T, d_model] and its weights [B, heads, T, keys]."""
        scores = (self.split(q) * self.scale) @ k.transpose(-1, -2)
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, -1)
        return (weights @ v).transpose(1, 2).flatten(2), weights

    def forward(self, x, past_k, past_v, cross_k, cross_v, mask):
        h = self.self_norm(x)
        k = torch.cat([past_k, self.split(self.sk(h))], 2) if past_k is not None else self.split(self.sk(h))
        v = torch.cat([past_v, self.split(self.sv(h))], 2) if past_v is not None else self.split(self.sv(h))
        x = x + self.so(self.attend(self.sq(h), k, v, mask)[0])
        out, cross_weights = self.attend(self.cq(self.cross_norm(x)), cross_k, cross_v)
        x = x + self.co(out)
        x = x + self.fc2(F.gelu(self.fc1(self.mlp_norm(x))))
        return x, k, v, cross_weights


class Decoder(nn.Module):
    """Optimum's layout. Without past: (input_ids, encoder_hidden_states) -> logits, then per layer the
    self-attention cache and the cross-attention keys/values; with past: (input_ids, caches) -> logits,
    the grown self-attention cache. Caches are [B, heads, T, head_dim]. Without past, one output beyond
    Optimum's, last: the cross-attention weights of `alignment_heads` [B, heads, T, encoder frames], for word
    timestamps (decoding/words.py)."""

    def __init__(self, model: nn.Module, with_past: bool, alignment_heads: list[tuple[int, int]] = ()):
        super().__init__()
        dec = model.model.decoder
        self.embed, self.positions, self.norm = dec.embed_tokens, dec.embed_positions.weight, dec.layer_norm
        self.layers = nn.ModuleList(DecoderLayer(layer) for layer in dec.layers)
        self.with_past = with_past
        self.alignment_heads = list(alignment_heads)

    def forward(self, input_ids, *inputs):
        n = len(self.layers)
        length = input_ids.shape[1]
        if self.with_past:
            past = [inputs[4 * i : 4 * i + 4] for i in range(n)]  # self k, self v, cross k, cross v
            offset = past[0][0].shape[2]
            mask = None  # one new token sees everything before it
        else:
            cross = [layer.cross_cache(inputs[0]) for layer in self.layers]
            past = [(None, None, ck, cv) for ck, cv in cross]
            offset = 0
            mask = torch.full((length, length), float("-inf"), device=input_ids.device).triu(1)
        x = self.embed(input_ids) + self.positions[offset : offset + length]
        presents, cross_weights = [], []
        for layer, (pk, pv, ck, cv) in zip(self.layers, past):
            x, k, v, w = layer(x, pk, pv, ck, cv, mask)
            presents += [k, v] if self.with_past else [k, v, ck, cv]
            cross_weights.append(w)
        logits = self.norm(x) @ self.embed.weight.T
        if self.with_past or not self.alignment_heads:
            return (logits, *presents)
        alignment = torch.stack([cross_weights[layer][:, head] for layer, head in self.alignment_heads], 1)
        return (logits, *presents, alignment)


def decoder_names(layers: int, with_past: bool) -> tuple[list[str], list[str]]:
    """Input and output names, as Optimum's Whisper export spells them."""
    kinds = ("decoder.key", "decoder.value", "encoder.key", "encoder.value")
    if with_past:
        inputs = ["input_ids"] + [f"past_key_values.{i}.{k}" for i in range(layers) for k in kinds]
        outputs = ["logits"] + [f"present.{i}.{k}" for i in range(layers) for k in kinds[:2]]
    else:
        inputs = ["input_ids", "encoder_hidden_states"]
        outputs = ["logits"] + [f"present.{i}.{k}" for i in range(layers) for k in kinds]
    return inputs, outputs
