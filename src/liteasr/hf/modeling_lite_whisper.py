"""A Whisper whose encoder linear layers may be replaced by two thin matrices.

Same parameter names and config schema as the public `efficient-speech/lite-whisper-*`
checkpoints: `...fc1.weight1` [in, r], `...fc1.weight2` [r, out], `...fc1.bias` [out].
"""

import torch
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, (x @ self.weight1).flatten(0, -2), self.weight2).view(*x.shape[:-1], -1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


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


class LiteWhisperForConditionalGeneration(WhisperForConditionalGeneration):
    config_class = LiteWhisperConfig

    def __init__(self, config: LiteWhisperConfig):
        super().__init__(config)
        apply_low_rank_config(self.model.encoder.layers, config.low_rank_config)

    def _init_weights(self, module):
        if isinstance(module, LowRankLinear):
            nn.init.normal_(module.weight1, std=module.in_features**-0.5)
            nn.init.normal_(module.weight2, std=module.rank**-0.5)
            nn.init.zeros_(module.bias)
        else:
            super()._init_weights(module)
