"""Greedy, batched transcription. Clips over 30 s are decoded long-form (sequentially, window by
window, with timestamps to find the cut points) rather than cut off."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from . import whisper
from .audio import SAMPLE_RATE
from .errors import UserError

WINDOW = whisper.WINDOW_SECONDS * SAMPLE_RATE
# Token budget per second of audio. Fast speech is ~6 tokens/s; the cap only stops runaway
# repetition loops (a damaged model can emit 448 tokens for a 3 s clip, 50x the decode time).
TOKENS_PER_SECOND = 12


@dataclass
class Transcription:
    texts: list[str]
    seconds: float  # feature extraction + generate + decode, warm-up excluded


def _generate(model, **inputs) -> torch.Tensor:
    with torch.inference_mode():
        return model.generate(**inputs, do_sample=False, num_beams=1)


def token_budget(samples: int, max_length: int, prompt_length: int = 0) -> int:
    """New tokens allowed for clips of at most `samples` samples (every runtime decodes under this cap);
    the decoder's context holds the prompt, up to 4 start tokens and the new tokens."""
    return min(int(TOKENS_PER_SECOND * samples / SAMPLE_RATE) + 32, max_length - 4 - prompt_length)


def _max_new_tokens(loaded: whisper.LoadedModel, samples: int, options: dict) -> int:
    prompt = options.get("prompt_ids")
    return token_budget(min(samples, WINDOW), loaded.model.generation_config.max_length,
                        0 if prompt is None else len(prompt))


def greedy_ids(loaded: whisper.LoadedModel, feats: torch.Tensor, samples: int, **options) -> torch.Tensor:
    """Greedy token ids for clips of at most `samples` samples: the transcript without the prompt,
    padded with end-of-text after the shorter ones. `options`: from whisper.generate_options. English-only
    models without options take liteasr's own decoding loop (generate's tokens, faster); the rest take
    generate, whose prompt for multilingual models follows their generation config in ways the loop
    does not copy (and cannot be checked here without multilingual weights)."""
    budget = _max_new_tokens(loaded, samples, options)
    if not options and not getattr(loaded.model.generation_config, "is_multilingual", False):
        return whisper.greedy_ids(loaded.model, feats, budget)
    return _generate(loaded.model, input_features=feats, max_new_tokens=budget, **options)


def own_transcripts(loaded: whisper.LoadedModel, feats: torch.Tensor, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's own greedy transcripts as teacher-forcing targets (no labels needed): ids = prompt +
    transcript + end-of-text (greedy_ids, like generate, drops the prompt, and the final end-of-text of
    the longest transcript), and the mask [batch, length - 1] of positions that predict a transcript token."""
    eos = whisper.eos_id(loaded.model)
    text = greedy_ids(loaded, feats, samples).cpu()
    ids = torch.cat([whisper.prompt_ids(loaded.model, feats), text, torch.full_like(text[:, :1], eos)], 1)
    return ids.to(feats.device), transcript_mask(ids, eos).to(feats.device)


def transcript_mask(ids: torch.Tensor, eos: int) -> torch.Tensor:
    """True for positions predicting a transcript token (up to and including the first end-of-text)."""
    ended = (ids[:, 1:] == eos).long().cumsum(1)
    # keep the first eos itself (shifted cumsum == 0), drop the padding after it
    return torch.cat([torch.zeros_like(ended[:, :1]), ended[:, :-1]], 1) == 0


def _short_batch(loaded: whisper.LoadedModel, audios: list[np.ndarray], options: dict | None = None) -> list[str]:
    if not isinstance(loaded, whisper.LoadedModel):  # ONNX Runtime or CTranslate2 (runtime/): decodes itself
        return loaded.short_batch(audios)
    param = next(loaded.model.parameters())
    feats = whisper.features(loaded.processor, audios, device=param.device, dtype=param.dtype)
    ids = greedy_ids(loaded, feats, max(len(a) for a in audios), **(options or {}))
    return loaded.processor.batch_decode(ids, skip_special_tokens=True)


def _inputs(loaded: whisper.LoadedModel, audio: np.ndarray) -> dict:
    """generate() inputs for one clip: one padded window, or all of a long clip (long-form)."""
    param = next(loaded.model.parameters())
    if len(audio) <= WINDOW:
        return {"input_features": whisper.features(loaded.processor, [audio], param.device, param.dtype)}
    inputs = loaded.processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, truncation=False, padding="longest",
                                                return_attention_mask=True, return_tensors="pt")
    return {"input_features": inputs.input_features.to(param.device, param.dtype),
            "attention_mask": inputs.attention_mask.to(param.device)}


def _long_one(loaded: whisper.LoadedModel, audio: np.ndarray, options: dict | None = None) -> str:
    if not isinstance(loaded, whisper.LoadedModel):
        return loaded.long_one(audio)
    ids = _generate(loaded.model, **_inputs(loaded, audio), return_timestamps=True, **(options or {}))
    return loaded.processor.batch_decode(ids, skip_special_tokens=True)[0]


@dataclass
class Segment:
    start: float  # seconds from the start of the clip
    end: float
    text: str
    tokens: list[int]


def transcribe_segments(loaded: whisper.LoadedModel, audio: np.ndarray, language: str | None = None,
                        task: str | None = None, prompt: str | None = None) -> tuple[str, list[Segment]]:
    """One clip, greedy, with Whisper's timestamps: the text and its segments."""
    options = whisper.generate_options(loaded, language, task, prompt)
    out = _generate(loaded.model, **_inputs(loaded, audio), return_timestamps=True, return_segments=True,
                    max_new_tokens=_max_new_tokens(loaded, len(audio), options), **options)
    first_special = loaded.processor.tokenizer.eos_token_id  # text tokens come before it in Whisper's vocabulary
    segments = []
    for s in out["segments"][0]:
        tokens = [t for t in s["tokens"].tolist() if t < first_special]
        text = loaded.processor.decode(tokens).strip()
        if text:
            segments.append(Segment(float(s["start"]), float(s["end"]), text, tokens))
    text = loaded.processor.batch_decode(out["sequences"], skip_special_tokens=True)[0].strip()
    return text, segments


def transcribe_options(loaded, language: str | None, task: str | None, prompt: str | None) -> dict:
    """generate() options for PyTorch models (whisper.generate_options); other runtimes decode plain greedy
    English-or-detected text and refuse the rest."""
    if isinstance(loaded, whisper.LoadedModel):
        return whisper.generate_options(loaded, language, task, prompt)
    if language not in (None, "en", "english") or task not in (None, "transcribe") or prompt:
        raise UserError(f"{loaded.name}: language, task and prompt need the PyTorch runtime")
    return {}


def transcribe(loaded: whisper.LoadedModel, audios: list[np.ndarray], batch_size: int = 8,
               progress: bool = True, warmup: bool = True, language: str | None = None, task: str | None = None,
               prompt: str | None = None) -> Transcription:
    options = transcribe_options(loaded, language, task, prompt)
    short = [i for i, a in enumerate(audios) if len(a) <= WINDOW]
    long = [i for i, a in enumerate(audios) if len(a) > WINDOW]
    if warmup and audios:  # first calls pay for allocation and kernel selection
        first = audios[short[0]] if short else audios[long[0]][:WINDOW]
        _short_batch(loaded, [first] * min(batch_size, max(1, len(short))), options)
    texts: list[str] = [""] * len(audios)
    elapsed = 0.0
    with tqdm(total=len(audios), desc="transcribing", unit="clip", disable=not progress) as bar:
        for start in range(0, len(short), batch_size):
            idx = short[start : start + batch_size]
            t0 = time.perf_counter()
            out = _short_batch(loaded, [audios[i] for i in idx], options)
            elapsed += time.perf_counter() - t0
            for i, text in zip(idx, out):
                texts[i] = text.strip()
            bar.update(len(idx))
        for i in long:
            t0 = time.perf_counter()
            texts[i] = _long_one(loaded, audios[i], options).strip()
            elapsed += time.perf_counter() - t0
            bar.update(1)
    return Transcription(texts, elapsed)
