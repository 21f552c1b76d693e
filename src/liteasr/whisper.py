"""Everything Whisper-specific: loading, features, the encoder's linear layers, lite conversion.

Other encoders can follow by providing the same small set of functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .audio import SAMPLE_RATE
from .errors import UserError
from .hf.configuration_lite_whisper import LiteWhisperConfig
from .hf.modeling_lite_whisper import (
    PROJECTIONS,
    LiteWhisperForConditionalGeneration,
    LowRankLinear,
    projection_parent,
    set_attention_modes,
)
from .sources import model_kind, resolve_model

WINDOW_SECONDS = 30
ENCODER_HOP = 320  # audio samples per encoder frame: mel hop 160, then the stride-2 convolution
ATTENTION = ("q_proj", "k_proj", "v_proj", "out_proj")
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

    def features(self, audios: list[np.ndarray]) -> torch.Tensor:
        param = next(self.model.parameters())
        return features(self.processor, audios, param.device, param.dtype)

    def encode(self, input_features: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return encode(self.model, input_features)

    def detect_language(self, encoded: torch.Tensor) -> tuple[list[str], list[float]]:
        return detect_language(self.model, encoded)

    def decode(self, encoded: torch.Tensor, prompt: torch.Tensor, budget: int) -> list[list[int]]:
        """Greedy tokens after `prompt` (end-of-text padding included)."""
        return greedy_ids(self.model, encoded, prompt.to(encoded.device), budget).tolist()


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
    from transformers import (GenerationConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperProcessor, WhisperTokenizerFast)

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


def features(processor, audios: list[np.ndarray], device="cpu", dtype=torch.float32) -> torch.Tensor:
    """Log-mel features, each clip padded (or cut) to one 30 s window: what the encoder sees. One clip at
    a time: the same values bit for bit, and a batch of 8 measured 2.4x slower per clip than one by one
    (67 against 28 ms for 8 clips on CPU: the batched STFT of 8 padded windows falls out of cache)."""
    extract = processor.feature_extractor
    windows = [extract([audio], sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features for audio in audios]
    return torch.cat(windows).to(device=device, dtype=dtype)


def mix_features(first: torch.Tensor, second: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The log-mel features of `(1 - weight) * first + weight * second` in mel power, per window
    (`weight` [windows]): what the feature extractor gives for the two windows' audio added (up to the
    cross terms of their spectra), with its normalization: log10 power, floored 8 below the window's
    maximum, then (x + 4) / 4."""
    power = lambda x: torch.pow(10.0, 4 * x.double() - 4)  # noqa: E731  (the floor cannot be undone: kept as is)
    w = weight.double()[:, None, None]
    log_spec = torch.log10(((1 - w) * power(first) + w * power(second)).clamp_min(1e-10))
    log_spec = torch.maximum(log_spec, log_spec.amax((1, 2), keepdim=True) - 8.0)
    return ((log_spec + 4.0) / 4.0).to(first.dtype)


def warp_features(features: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Vocal tract length perturbation of log-mel windows (`alpha` [windows]): each window's frequency axis
    stretched by its factor (above 1: formants move up, as for a shorter vocal tract), piecewise linear so
    that the top of the band stays put (Jaitly & Hinton, 2013), by linear interpolation between the mel
    bins of the feature extractor's (Slaney) scale. A new voice saying the same words, no audio needed."""
    from transformers.audio_utils import hertz_to_mel, mel_to_hertz

    bins, top = features.shape[1], SAMPLE_RATE / 2
    mels = np.linspace(hertz_to_mel(0.0, "slaney"), hertz_to_mel(top, "slaney"), bins + 2)[1:-1]  # bin centres
    hz = torch.from_numpy(mel_to_hertz(mels, "slaney"))
    a = alpha.detach().cpu().double()[:, None]
    knee = 0.8 * top * a.clamp(max=1.0) / a  # below it f -> a f; above, a line up to (top, top)
    source = torch.where(hz <= a * knee, hz / a, knee + (hz - a * knee) * (top - knee) / (top - a * knee))
    pos = (hertz_to_mel(source.numpy(), "slaney") - mels[0]) / (mels[1] - mels[0])  # fractional source bin
    pos = torch.from_numpy(pos).clamp(0, bins - 1).to(features.device)
    low = pos.floor().long().clamp(max=bins - 2)
    frac = (pos - low).to(features.dtype)[:, :, None]
    pick = lambda idx: features.gather(1, idx[:, :, None].expand(-1, -1, features.shape[2]))  # noqa: E731
    # interpolated values stay within their neighbours, so the extractor's floor (8 below the window's
    # maximum in log10) still holds
    return pick(low) * (1 - frac) + pick(low + 1) * frac


TASKS = ("transcribe", "translate")


def language_code(language: str) -> str:
    """`en`, `English`, `english` -> `en` (Whisper's codes; an unknown name is returned lower-cased)."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    low = language.strip().lower()
    return TO_LANGUAGE_CODE.get(low, low)


def language_name(code: str) -> str:
    """`en` -> `english`, as OpenAI's API reports languages; an unknown code is returned as is."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return LANGUAGES.get(code, code)


def is_multilingual(config) -> bool:
    return bool(getattr(config, "is_multilingual", False))


def language_tokens(config) -> dict[str, int]:
    """Language code -> its token id, for a multilingual generation config (empty for English-only)."""
    if not is_multilingual(config):
        return {}
    return {token[2:-2]: int(i) for token, i in sorted((config.lang_to_id or {}).items(), key=lambda kv: kv[1])}


def check_language_task(config, name: str, language: str | None, task: str | None) -> str | None:
    """The language's code, checked against the model, with the task: English-only models take only `en`
    and `transcribe`. Raises UserError with the reason."""
    if task is not None and task not in TASKS:
        raise UserError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    code = None if language is None else language_code(language)
    if is_multilingual(config):
        if code is not None and code not in language_tokens(config):
            raise UserError(f"{name} does not know language {language!r}")
        return code
    if code not in (None, "en"):
        raise UserError(f"{name} is English-only: language must be en, got {language!r}")
    if task == "translate":
        raise UserError(f"{name} is English-only: it cannot translate")
    return code


def build_prompt(config, languages: list[str | None], task: str = "transcribe",
                 previous: list[int] | tuple = ()) -> torch.Tensor:
    """The decoder prompt, one row per clip, as openai/whisper and faster-whisper build it without
    timestamps: [previous text tokens (starting with <|startofprev|>)], <|startoftranscript|>, then for
    multilingual models the clip's language and the task, then <|notimestamps|>. `languages`: codes
    (ignored for English-only models)."""
    rows = []
    for code in languages:
        row = [*previous, config.decoder_start_token_id]
        if is_multilingual(config):
            if code is None:
                raise ValueError("a multilingual prompt needs each clip's language")
            row += [language_tokens(config)[code], config.task_to_id[task or "transcribe"]]
        rows.append(row + [config.no_timestamps_token_id])
    return torch.tensor(rows, dtype=torch.long)


def previous_text_ids(processor, config, max_target_positions: int, prompt: str | None) -> list[int]:
    """<|startofprev|> and the prompt's tokens. Like openai/whisper, only its last tokens: a prompt may
    use at most half the decoder's context."""
    if not prompt:
        return []
    ids = processor.get_prompt_ids(prompt).tolist()
    keep = max_target_positions // 2 - 1
    return [ids[0], *ids[1:][-keep:]]


def language_probs_from_logits(config, logits) -> tuple[list[str], list[float]]:
    """The most likely language of each row of next-token logits after <|startoftranscript|>, and its
    probability among the language tokens (openai/whisper's detect_language; any array type)."""
    tokens = language_tokens(config)
    codes, ids = list(tokens), list(tokens.values())
    scores = torch.as_tensor(np.asarray(logits, dtype=np.float64) if not torch.is_tensor(logits)
                             else logits.detach().double().cpu())[:, ids]
    probs = torch.softmax(scores, -1)
    best = probs.argmax(-1)
    return [codes[b] for b in best.tolist()], [float(probs[i, b]) for i, b in enumerate(best.tolist())]


@torch.inference_mode()
def detect_language(model: nn.Module, encoded: torch.Tensor) -> tuple[list[str], list[float]]:
    """Each window's language and its probability, from one decoder step on <|startoftranscript|>."""
    config = model.generation_config
    start = torch.full((len(encoded), 1), config.decoder_start_token_id, device=encoded.device)
    hidden = model.model.decoder(input_ids=start, encoder_hidden_states=encoded).last_hidden_state[:, -1]
    return language_probs_from_logits(config, vocabulary_logits(model, hidden))


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


def to_lite(model: nn.Module) -> LiteWhisperForConditionalGeneration:
    """Wrap a Whisper whose encoder projections were swapped in place into a lite-whisper model."""
    values = model.config.to_dict()
    for key in ("model_type", "architectures", "auto_map", "transformers_version", "low_rank_config"):
        values.pop(key, None)
    from .flops import best_attention_modes

    values.pop("attention_modes", None)
    # Attention in reduced dimension only where it lowers FLOPs, recorded so loading reproduces it.
    config = LiteWhisperConfig(low_rank_config=low_rank_config(model), attention_modes=best_attention_modes(model),
                               **values)
    config.architectures = ["LiteWhisperForConditionalGeneration"]
    with torch.device("meta"):
        lite = LiteWhisperForConditionalGeneration(config)
    lite.load_state_dict(model.state_dict(), strict=True, assign=True)
    lite.tie_weights()
    lite.generation_config = model.generation_config
    return lite.eval()


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
    return model.model.encoder(input_features).last_hidden_state


def encoder_output(model: nn.Module, input_features: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return encoder_forward(model, input_features)


def cross_attention_metric(model: nn.Module) -> torch.Tensor:
    """M [d, d] with |x M^(1/2)|^2 = what the decoder reads of an encoder-output row x: the sum over decoder
    layers of its cross-attention key and value maps' Gram matrices (float64)."""
    metric = 0
    for layer in model.model.decoder.layers:
        for proj in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj):
            w = proj.weight.detach().double()
            metric = metric + w.T @ w
    return metric


def encoder_norms(model: nn.Module) -> list[nn.Module]:
    """The encoder's LayerNorms (healing may adjust them along with the factors)."""
    return [m for m in model.model.encoder.modules() if isinstance(m, nn.LayerNorm)]


def encode(model: nn.Module, input_features: torch.Tensor) -> torch.Tensor:
    """The encoder's output states for a batch of windows. On CPU one window at a time: a window's
    attention scores (heads x 1500 x 1500) no longer fit in cache inside a large batch, so a batch of 8
    measured 10-30% slower per window than one by one (benchmarks/RESULTS.md)."""
    encoder = model.model.encoder
    if input_features.device.type != "cpu":
        return encoder(input_features).last_hidden_state
    return torch.cat([encoder(window[None]).last_hidden_state for window in input_features])


def vocabulary_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Next-token logits [batch, vocab] for decoder states [batch, d_model]: the [vocab, batch] product
    `W @ hidden.T`, viewed transposed. On CPU it measured 1.5-3x faster than `hidden @ W.T` with a
    contiguous transposed copy of W (tiny.en: 1.7 against 2.8 ms for one row, 4.3 against 6.7 for eight;
    benchmarks/RESULTS.md), and needs no copy. A lone row is doubled: as a single column the product
    takes a matrix-vector path that measured 7.8 ms."""
    projection = model.proj_out
    columns = hidden if len(hidden) > 1 else hidden.repeat(2, 1)
    logits = (projection.weight @ columns.T).T[: len(hidden)]
    return logits if projection.bias is None else logits + projection.bias


def eos_id(model: nn.Module) -> int:
    """The end-of-text token (generation configs may list several; the first is Whisper's)."""
    eos = model.generation_config.eos_token_id
    return eos[0] if isinstance(eos, list) else eos


@torch.inference_mode()
def greedy_ids(model: nn.Module, encoded: torch.Tensor, prompt: torch.Tensor, budget: int) -> torch.Tensor:
    """Greedy decoding from encoder states and a prompt (build_prompt), as generate() does it with the
    same prompt (same token suppression, `max_new_tokens=budget`) and the same output: the new tokens,
    padded with end-of-text, without the final end-of-text of the longest. Unlike generate, a finished
    clip leaves the batch: neutral on ordinary clips (measured), it keeps one clip looping to its budget
    from costing a batch's step each time. Faster than generate by 1.2-1.3x per clip on CPU
    (benchmarks/decode_loop.py)."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    config = model.generation_config
    eos = eos_id(model)
    suppress = torch.as_tensor(config.suppress_tokens or [], dtype=torch.long, device=encoded.device)
    begin_suppress = torch.as_tensor(config.begin_suppress_tokens or [], dtype=torch.long, device=encoded.device)
    tokens = torch.full((len(encoded), budget), eos, dtype=torch.long, device=encoded.device)
    rows = torch.arange(len(encoded), device=encoded.device)  # clips still decoding, as rows of `tokens`
    inputs = prompt.to(encoded.device)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    length = budget
    for step in range(budget):
        hidden = model.model.decoder(input_ids=inputs, encoder_hidden_states=encoded, cache=cache,
                                     use_cache=True).last_hidden_state[:, -1]
        logits = vocabulary_logits(model, hidden)
        logits[:, suppress] = -torch.inf
        if step == 0:
            logits[:, begin_suppress] = -torch.inf
        token = logits.argmax(-1)
        tokens[rows, step] = token
        going = token != eos
        if not going.all():
            if not going.any():
                length = step
                break
            keep = going.nonzero().view(-1)
            rows, token = rows[keep], token[keep]
            cache.batch_select_indices(keep)
            # From the second step on the decoder reads cross-attention keys and values from the cache;
            # the encoder states only have to be there, so a view of the right batch size, not a copy.
            encoded = encoded[: len(keep)]
        inputs = token[:, None]
    return tokens[:, :length]
