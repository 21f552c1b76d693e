"""Configuration of a lite-whisper model: a Whisper config plus per-layer encoder ranks."""

from transformers import WhisperConfig


class LiteWhisperConfig(WhisperConfig):
    model_type = "lite-whisper"

    def __init__(self, low_rank_config: list[dict[str, int]] | None = None,
                 attention_modes: list[dict[str, bool]] | None = None, **kwargs):
        super().__init__(**kwargs)
        # One dict per encoder layer, {"q_proj": rank, ...}; a projection that is absent stays dense.
        self.low_rank_config = low_rank_config
        # One dict per encoder layer, {"scores": bool, "values": bool}: attention in reduced dimension.
        self.attention_modes = attention_modes
