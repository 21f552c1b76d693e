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
        # The model is a Whisper (the same decoder, generation and tokenizer), so instances say so: transformers'
        # ASR pipeline takes Whisper's path (long-form, timestamps, languages) only for model_type "whisper", and
        # treated "lite-whisper" as a CTC model. config.json keeps "lite-whisper": transformers writes the class's.
        self.model_type = "whisper"
