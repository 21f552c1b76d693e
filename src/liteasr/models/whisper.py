"""Everything Whisper-specific: loading, features, the encoder's linear layers, lite conversion.

Other encoders can follow by providing the same small set of functions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from liteasr.data.audio import SAMPLE_RATE
from liteasr.errors import UserError
from liteasr.models import generation
from liteasr.models.hf.modeling_lite_whisper import (
    PROJECTIONS,
    LiteWhisperForConditionalGeneration,
    LowRankLinear,
    projection_parent,
    set_attention_modes,
)
from liteasr.models.sources import model_kind, resolve_model

WINDOW_SECONDS = 30
MEL_HOP = 160  # audio samples per mel frame
ENCODER_HOP = 320  # audio samples per encoder frame: mel hop 160, then the stride-2 convolution
ATTENTION = ("q_proj", "k_proj", "v_proj", "out_proj")
# Whisper's key projections have no bias; a low-rank one has (mu + V Vᵀ(b - mu), with b = 0)
WITHOUT_BIAS = ("k_proj",)
# An encoder layer's projections in the order their inputs become available, grouped by shared input:
# q/k/v read the first layer norm's output, out_proj the attention, fc1 the second norm, fc2 the GELU.
LAYER_STAGES = (("q_proj", "k_proj", "v_proj"), ("out_proj",), ("fc1",), ("fc2",))

# Known architectures, to find a processor for checkpoints that ship none (as the public
# efficient-speech ones do): (d_model, encoder_layers, vocab_size) -> short name.
_ARCHITECTURES = {
    (384, 4, 51864): "tiny.en", (384, 4, 51865): "tiny", (512, 6, 51864): "base.en", (512, 6, 51865): "base",
    (768, 12, 51864): "small.en", (768, 12, 51865): "small", (1024, 24, 51864): "medium.en",
    (1024, 24, 51865): "medium", (1280, 32, 51865): "large-v2", (1280, 32, 51866): "large-v3",
}


@dataclass(frozen=True)
class WindowPolicy:
    """The encoder window a clip of up to 30 s gets: its length plus `margin`, rounded up to a multiple of
    `multiple`, at least `floor` and at most 30 s (all in seconds). Whisper pads every clip to 30 s (a floor
    of 30, the default); a shorter window skips the padding's cost, which for a 5 s clip is most of the
    encoder's (self-attention grows with the square of the window). Long-form audio keeps 30 s windows."""

    floor: float = WINDOW_SECONDS
    margin: float = 1.0
    multiple: float = 1.0

    def __post_init__(self):
        if not 0 < self.floor <= WINDOW_SECONDS:
            raise UserError(f"window floor must be within (0, {WINDOW_SECONDS}] seconds, got {self.floor}")
        if not 0 <= self.margin <= WINDOW_SECONDS:
            raise UserError(f"window margin must be within [0, {WINDOW_SECONDS}] seconds, got {self.margin}")
        if not 0.02 <= self.multiple <= WINDOW_SECONDS:
            raise UserError(f"window multiple must be within [0.02, {WINDOW_SECONDS}] seconds, got {self.multiple}")

    @property
    def padded(self) -> bool:
        return self.floor >= WINDOW_SECONDS

    def seconds(self, samples: int) -> float:
        audio = samples / SAMPLE_RATE + self.margin
        return min(WINDOW_SECONDS, max(self.floor, math.ceil(audio / self.multiple - 1e-9) * self.multiple))

    def frames(self, samples: int) -> int:
        """Mel frames of the window for a clip of `samples` samples (even: the encoder halves them)."""
        return 2 * math.ceil(self.seconds(samples) * SAMPLE_RATE / ENCODER_HOP - 1e-9)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, config) -> "WindowPolicy":
        """The policy a checkpoint records (`liteasr_window` in config.json); Whisper's 30 s without one."""
        values = getattr(config, "liteasr_window", None) if not isinstance(config, dict) else config.get("liteasr_window")
        return cls(**values) if values else cls()


PADDED = WindowPolicy()
# `compress --window auto`: the audio + 1 s, at least 5 s, healed for (refine.window). Unhealed, short windows
# loop: dense tiny.en on 40 clips of librispeech_other went from 13.7 WER padded to 17.4 at a 10 s floor and
# 33.5 at 5 s; healed for a 5 s floor, 12.9 (benchmarks/window.py has the measured table).
AUTO_WINDOW = WindowPolicy(floor=5.0)


@dataclass
class LoadedModel:
    """A Whisper or lite-whisper model with its processor and where it came from."""

    model: nn.Module
    processor: object  # transformers.WhisperProcessor
    path: Path
    name: str
    runtime = "pytorch"

    # What every runtime (runtime/onnx_model.py, runtime/ct2_model.py) provides for decoding.
    @property
    def generation_config(self):
        return self.model.generation_config

    @property
    def architecture(self) -> nn.Module:
        """The module whose structure describes the model (costs, `info`): here the model itself."""
        return self.model

    @property
    def config(self):
        """The model's configuration (layers, heads, context), as every runtime gives it."""
        return self.model.config

    variable_window = True  # encodes windows shorter than 30 s (WindowPolicy)

    @property
    def window(self) -> WindowPolicy:
        """The window policy the checkpoint records (30 s padding without one)."""
        return WindowPolicy.from_config(self.model.config)

    def features(self, audios: list[np.ndarray], frames: int | None = None) -> torch.Tensor:
        param = next(self.model.parameters())
        return features(self.processor, audios, param.device, param.dtype, frames)

    def encode(self, input_features: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return encode(self.model, input_features)

    def detect_language(self, encoded: torch.Tensor) -> tuple[list[str], list[float]]:
        return generation.detect_language(self.model, encoded)

    def start_decoder(self, encoded: torch.Tensor, prompt: torch.Tensor, sot_index: int) -> generation.TorchDecoder:
        """The decoder as a stepper for decoding/search.py, after `prompt`."""
        return generation.TorchDecoder(self.model, encoded, prompt, sot_index)

    def cross_attentions(self, encoded: torch.Tensor, tokens: list[int], heads: list[tuple[int, int]]):
        """Word timestamps (decoding/words.py): `heads`' cross-attention weights and the logits over `tokens`."""
        return generation.cross_attention_weights(self.model, encoded, tokens, heads)


ATTENTION_CHOICES = ("auto", "reduced", "standard")


def force_attention(model: nn.Module, attention: str) -> None:
    """`auto`: the modes recorded in the checkpoint; `reduced` / `standard`: every eligible layer one way."""
    if attention not in ATTENTION_CHOICES:
        raise UserError(f"--attention must be one of {', '.join(ATTENTION_CHOICES)}, got {attention!r}")
    layers = model.model.encoder.layers
    if attention == "auto":
        modes = getattr(model.config, "attention_modes", None)
    else:
        modes = [{"scores": attention == "reduced", "values": attention == "reduced"}] * len(layers)
    set_attention_modes(layers, modes)


def load(spec: str, device: str = "cpu", dtype: torch.dtype = torch.float32, attention: str = "auto") -> LoadedModel:
    from transformers import (
        GenerationConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    path = resolve_model(spec)
    kind = model_kind(path)
    cls = LiteWhisperForConditionalGeneration if kind == "lite-whisper" else WhisperForConditionalGeneration
    try:
        # safetensors only: a pickled pytorch_model.bin could run arbitrary code
        model = cls.from_pretrained(path, dtype=dtype, attn_implementation="sdpa", use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{spec}: cannot load model weights ({str(exc).splitlines()[0]})") from None
    model.to(device).eval()
    if kind == "lite-whisper":
        force_attention(model, attention)
    processor_dir = path
    if not _has_processor(path) or not (path / "generation_config.json").is_file():
        # Public lite-whisper checkpoints ship weights only: take the rest from their base model.
        c = model.config
        base = _ARCHITECTURES.get((c.d_model, c.encoder_layers, c.vocab_size))
        if base is None:
            raise UserError(f"{spec}: has no tokenizer/preprocessor/generation files and is not a known Whisper size")
        base_dir = resolve_model(base)
        if not (path / "generation_config.json").is_file():
            model.generation_config = GenerationConfig.from_pretrained(base_dir)
        if not _has_processor(path):
            processor_dir = base_dir
    # Components one by one: WhisperProcessor.from_pretrained would consult AutoConfig, which asks
    # before running the checkpoint's remote code even though liteasr brings its own copy.
    processor = WhisperProcessor(WhisperFeatureExtractor.from_pretrained(processor_dir),
                                 WhisperTokenizerFast.from_pretrained(processor_dir))
    return LoadedModel(model, processor, path, str(spec))


def _has_processor(path: Path) -> bool:
    has = lambda *names: any((path / n).is_file() for n in names)  # noqa: E731
    return has("tokenizer.json", "vocab.json") and has("preprocessor_config.json", "processor_config.json")


def features(processor, audios: list[np.ndarray], device="cpu", dtype=torch.float32,
             frames: int | None = None) -> torch.Tensor:
    """Log-mel features, each clip padded (or cut) to one window of `frames` mel frames (default 30 s):
    what the encoder sees. A shorter window holds the first `frames` frames of the 30 s one (the log-mel
    scale comes from the loudest frame, which is speech, not padding). One clip at a time: the same values
    bit for bit, and a batch of 8 measured 2.4x slower per clip than one by one (67 against 28 ms for 8
    clips on CPU: the batched STFT of 8 padded windows falls out of cache)."""
    extract = processor.feature_extractor
    length = {} if frames is None else {"max_length": frames * MEL_HOP, "padding": "max_length", "truncation": True}
    windows = [extract([audio], sampling_rate=SAMPLE_RATE, return_tensors="pt", **length).input_features
               for audio in audios]
    return torch.cat(windows).to(device=device, dtype=dtype)


def encoder_linears(model: nn.Module) -> dict[str, nn.Module]:
    """Every encoder projection, keyed `layers.{i}.{name}` (name in PROJECTIONS)."""
    layers = model.model.encoder.layers
    return {f"layers.{i}.{name}": getattr(projection_parent(layer, name), name)
            for i, layer in enumerate(layers) for name in PROJECTIONS}


def split_key(key: str) -> tuple[int, str]:
    _, index, name = key.split(".")
    return int(index), name


def is_attention(key: str) -> bool:
    return split_key(key)[1] in ATTENTION


def replace_linear(model: nn.Module, key: str, module: nn.Module) -> None:
    index, name = split_key(key)
    setattr(projection_parent(model.model.encoder.layers[index], name), name, module)


def low_rank_config(model: nn.Module) -> list[dict[str, int]]:
    """The checkpoint's `low_rank_config`: per encoder layer, the rank of each factored projection."""
    config = [dict() for _ in model.model.encoder.layers]
    for key, module in encoder_linears(model).items():
        if isinstance(module, LowRankLinear):
            index, name = split_key(key)
            config[index][name] = module.rank
    return config


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    return model.model.encoder.layers


def speech_frames(samples: int) -> int:
    """Encoder frames that hold audio for a window of `samples` samples (the rest is the 30 s padding)."""
    return min(-(-samples // ENCODER_HOP), WINDOW_SECONDS * 16000 // ENCODER_HOP)


def embed(model: nn.Module, input_features: torch.Tensor) -> torch.Tensor:
    """The encoder's input to its first layer: two convolutions plus positions."""
    enc = model.model.encoder
    with torch.inference_mode():
        x = nn.functional.gelu(enc.conv2(nn.functional.gelu(enc.conv1(input_features)))).permute(0, 2, 1)
        return x + enc.embed_positions.weight[: x.shape[1]]


# The functions below come in pairs: `layer_forward`, `encoder_forward`, `decoder_log_probs` let
# gradients flow (healing); `run_layer`, `encoder_output`, `next_token_log_probs` are the same under
# inference mode.

def layer_forward(layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    out = layer(hidden, None)
    return out[0] if isinstance(out, tuple) else out


def run_layer(layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return layer_forward(layer, hidden)


def encoder_finish(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The encoder output from the last layer's output (the final layer norm)."""
    with torch.inference_mode():
        return model.model.encoder.layer_norm(hidden)


def decoder_log_probs(model: nn.Module, encoded: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Teacher-forced decoder: log-probabilities of the token after each of `ids[:, :-1]`, at the positions
    where `mask` [batch, length - 1] is true, as [positions, vocab] in float32."""
    states = model.model.decoder(input_ids=ids[:, :-1], encoder_hidden_states=encoded).last_hidden_state
    return torch.log_softmax(model.proj_out(states[mask]).float(), -1)


def next_token_log_probs(model: nn.Module, encoded: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return decoder_log_probs(model, encoded, ids, mask)


def encoder_forward(model: nn.Module, input_features: torch.Tensor) -> torch.Tensor:
    """Encoder states for windows of any length up to 30 s (transformers' encoder takes 30 s only): the
    same layers, the positions of the frames that exist."""
    enc = model.model.encoder
    if input_features.shape[-1] == 2 * model.config.max_source_positions:
        return enc(input_features).last_hidden_state
    x = nn.functional.gelu(enc.conv2(nn.functional.gelu(enc.conv1(input_features)))).permute(0, 2, 1)
    x = x + enc.embed_positions.weight[: x.shape[1]]
    for layer in enc.layers:
        x = layer_forward(layer, x)
    return enc.layer_norm(x)


def encoder_output(model: nn.Module, input_features: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return encoder_forward(model, input_features)


def encoder_norms(model: nn.Module) -> list[nn.Module]:
    """The encoder's LayerNorms (healing may adjust them along with the factors)."""
    return [m for m in model.model.encoder.modules() if isinstance(m, nn.LayerNorm)]


def encode(model: nn.Module, input_features: torch.Tensor) -> torch.Tensor:
    """The encoder's output states for a batch of windows. On CPU one window at a time: a window's
    attention scores (heads x 1500 x 1500) no longer fit in cache inside a large batch, so a batch of 8
    measured 10-30% slower per window than one by one (benchmarks/RESULTS.md)."""
    if input_features.device.type != "cpu":
        return encoder_forward(model, input_features)
    return torch.cat([encoder_forward(model, window[None]) for window in input_features])


