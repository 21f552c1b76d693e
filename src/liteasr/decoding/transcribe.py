"""Greedy, batched transcription on any runtime, with liteasr's own prompt: the given or detected
language and the task (`transcribe` unless asked), as openai/whisper and faster-whisper build it. Clips
over 30 s are decoded long-form rather than cut off.

A runtime (whisper.LoadedModel for PyTorch, runtime.OnnxModel, runtime.CT2Model) provides
`generation_config`, `processor`, `features(audios)`, `encode(features)`, `detect_language(encoded)`
(codes and probabilities) and `decode(encoded, prompt, budget)` (greedy tokens after the prompt); the
prompt, the token budget and the language bookkeeping are built here, once for all of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from liteasr.data.audio import SAMPLE_RATE
from liteasr.errors import UserError
from liteasr.models import generation, whisper

WINDOW = whisper.WINDOW_SECONDS * SAMPLE_RATE


@dataclass(frozen=True)
class DecodingOptions:
    """What to decode beyond the audio (greedy). `language`: a code or English name; None detects it
    per clip on multilingual models (English-only models take only `en`). `task`: `transcribe` or
    `translate` (into English; multilingual models). `prompt`: text the transcript continues from."""

    language: str | None = None
    task: str = "transcribe"
    prompt: str | None = None
    # The encoder window of clips up to 30 s: None, the model's own (recorded in its checkpoint by `compress
    # --window`; 30 s padding without one); "auto", the model's own, an error for a model that records none
    # (not healed for short windows, it loops on them); a number, a floor in seconds with the model's (or
    # the default) margin (30: Whisper's padded window); or a whisper.WindowPolicy.
    window: float | str | whisper.WindowPolicy | None = None


@dataclass
class Transcription:
    texts: list[str]
    seconds: float  # features + encoder + decoding, warm-up excluded
    languages: list[str]  # the language each clip was decoded in (code; `en` for English-only models)
    # The language the model hears and its probability (multilingual models; None for English-only ones).
    # Computed even when the language is given, so that evaluation can report language-ID errors.
    detected: list[tuple[str, float] | None]


def check_options(loaded, options: DecodingOptions | None) -> DecodingOptions:
    """Options checked against the model, the language as its code and the window as a WindowPolicy;
    UserError names what is wrong."""
    options = options or DecodingOptions()
    code = generation.check_language_task(loaded.generation_config, loaded.name, options.language, options.task)
    return replace(options, language=code, task=options.task or "transcribe", window=window_policy(loaded, options.window))


def window_policy(loaded, window) -> whisper.WindowPolicy:
    """The WindowPolicy for DecodingOptions.window on this model (see there)."""
    own = getattr(loaded, "window", whisper.PADDED)
    if window is None:
        policy = own
    elif isinstance(window, whisper.WindowPolicy):
        policy = window
    elif window == "auto":
        if own.padded:
            raise UserError(f"{loaded.name} was not healed for short windows (its checkpoint records no window "
                            "policy): `liteasr compress ... --window auto` heals one; a floor in seconds tries "
                            "this model anyway")
        policy = own
    else:
        try:
            floor = float(window)
        except (TypeError, ValueError):
            raise UserError(f"window must be auto or a number of seconds, got {window!r}") from None
        policy = whisper.WindowPolicy(floor=floor, margin=own.margin, multiple=own.multiple)
    if not policy.padded and not getattr(loaded, "variable_window", False):
        if window is None:  # recorded in the checkpoint, but this runtime has fixed 30 s windows
            return whisper.PADDED
        raise UserError(f"{loaded.name}: this runtime encodes 30 s windows only (window {window!r})")
    return policy


def _previous(loaded, options: DecodingOptions) -> list[int]:
    config = getattr(loaded, "config", None) or loaded.model.config
    return generation.previous_text_ids(loaded.processor, loaded.generation_config, config.max_target_positions,
                                     options.prompt)


@dataclass
class Decoded:
    ids: list[list[int]]  # greedy tokens after the prompt
    languages: list[str]
    detected: list[tuple[str, float] | None]


def decode_windows(loaded, audios: list[np.ndarray], options: DecodingOptions,
                   languages: list[str | None] | None = None, one_language: bool = False) -> Decoded:
    """Greedy tokens for clips of at most 30 s, one batch. A clip's language: `languages[i]`, else
    `options.language`, else the detected one (`one_language`: the first clip's, for the windows of one
    long clip, as openai/whisper decides the language once per file, in 30 s windows). Under a short-window
    policy the clips are grouped by window length (bucketed): each clip decodes as it would alone."""
    policy = options.window if isinstance(options.window, whisper.WindowPolicy) else whisper.PADDED
    if one_language or policy.padded:
        return _decode_group(loaded, audios, options, languages, one_language, None)
    given = languages or [None] * len(audios)
    buckets: dict[int, list[int]] = {}
    for i, audio in enumerate(audios):
        buckets.setdefault(policy.frames(len(audio)), []).append(i)
    out = Decoded([[]] * len(audios), [""] * len(audios), [None] * len(audios))
    for frames, idx in sorted(buckets.items()):
        part = _decode_group(loaded, [audios[i] for i in idx], options, [given[i] for i in idx], False, frames)
        for k, i in enumerate(idx):
            out.ids[i], out.languages[i], out.detected[i] = part.ids[k], part.languages[k], part.detected[k]
    return out


def _decode_group(loaded, audios: list[np.ndarray], options: DecodingOptions, languages: list[str | None] | None,
                  one_language: bool, frames: int | None) -> Decoded:
    config = loaded.generation_config
    encoded = loaded.encode(loaded.features(audios) if frames is None else loaded.features(audios, frames))
    detected: list = [None] * len(audios)
    if generation.is_multilingual(config):
        codes, probs = loaded.detect_language(encoded)
        detected = list(zip(codes, probs))
        if one_language:
            detected = [detected[0]] * len(audios)
    given = languages or [None] * len(audios)
    used = [g or options.language or (d[0] if d else "en") for g, d in zip(given, detected)]
    previous = _previous(loaded, options)
    prompt = generation.build_prompt(config, used, options.task, previous)
    budget = generation.token_budget(max(len(a) for a in audios), config.max_length, len(previous))
    return Decoded(loaded.decode(encoded, prompt, budget), used, detected)


def _generate(model, **inputs) -> torch.Tensor:
    with torch.inference_mode():
        return model.generate(**inputs, do_sample=False, num_beams=1)


def _generate_options(loaded: whisper.LoadedModel, options: DecodingOptions, language: str) -> dict:
    """generate() keyword arguments for one clip decoded in `language` (PyTorch long-form and timestamps)."""
    kwargs: dict = {}
    if generation.is_multilingual(loaded.generation_config):
        kwargs.update(language=language, task=options.task)
    previous = _previous(loaded, options)
    if previous:
        kwargs["prompt_ids"] = torch.tensor(previous, device=next(loaded.model.parameters()).device)
    return kwargs


def _clip_language(loaded, audio: np.ndarray, options: DecodingOptions,
                   language: str | None) -> tuple[str, tuple[str, float] | None]:
    """The language a whole clip is decoded in (given, else detected on its first 30 s) and the detection
    (None when the language is given: no extra encoder pass just to report it)."""
    detected = None
    if language or options.language:
        return language or options.language, None
    if generation.is_multilingual(loaded.generation_config):
        codes, probs = loaded.detect_language(loaded.encode(loaded.features([audio[:WINDOW]])))
        detected = (codes[0], probs[0])
    return language or options.language or (detected[0] if detected else "en"), detected


def _inputs(loaded: whisper.LoadedModel, audio: np.ndarray) -> dict:
    """generate() inputs for one clip: one padded window, or all of a long clip (long-form)."""
    param = next(loaded.model.parameters())
    if len(audio) <= WINDOW:
        return {"input_features": loaded.features([audio])}
    inputs = loaded.processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, truncation=False, padding="longest",
                                                return_attention_mask=True, return_tensors="pt")
    return {"input_features": inputs.input_features.to(param.device, param.dtype),
            "attention_mask": inputs.attention_mask.to(param.device)}


def _long_one(loaded, audio: np.ndarray, options: DecodingOptions, language: str | None) -> tuple[str, Decoded]:
    """A clip over 30 s. PyTorch: generate's long-form decoding (timestamps find the cut points); other
    runtimes: consecutive 30 s windows decoded as one batch and joined."""
    if not isinstance(loaded, whisper.LoadedModel):
        windows = [audio[i : i + WINDOW] for i in range(0, len(audio), WINDOW)]
        out = decode_windows(loaded, windows, options, [language] * len(windows), one_language=True)
        text = " ".join(t.strip() for t in loaded.processor.batch_decode(out.ids, skip_special_tokens=True))
        return text, Decoded([], out.languages[:1], out.detected[:1])
    used, detected = _clip_language(loaded, audio, options, language)
    ids = _generate(loaded.model, **_inputs(loaded, audio), return_timestamps=True,
                    **_generate_options(loaded, options, used))
    return loaded.processor.batch_decode(ids, skip_special_tokens=True)[0], Decoded([], [used], [detected])


@dataclass
class Segment:
    start: float  # seconds from the start of the clip
    end: float
    text: str
    tokens: list[int]


def transcribe_segments(loaded: whisper.LoadedModel, audio: np.ndarray, options: DecodingOptions | None = None
                        ) -> tuple[str, list[Segment], str, tuple[str, float] | None]:
    """One clip, greedy, with Whisper's timestamps (PyTorch): the text, its segments, the language it
    was decoded in and the detected language with its probability."""
    options = check_options(loaded, options)
    used, detected = _clip_language(loaded, audio, options, None)
    out = _generate(loaded.model, **_inputs(loaded, audio), return_timestamps=True, return_segments=True,
                    max_new_tokens=generation.token_budget(len(audio), loaded.generation_config.max_length,
                                                len(_previous(loaded, options))),
                    **_generate_options(loaded, options, used))
    first_special = loaded.processor.tokenizer.eos_token_id  # text tokens come before it in Whisper's vocabulary
    segments = []
    for s in out["segments"][0]:
        tokens = [t for t in s["tokens"].tolist() if t < first_special]
        text = loaded.processor.decode(tokens).strip()
        if text:
            segments.append(Segment(float(s["start"]), float(s["end"]), text, tokens))
    text = loaded.processor.batch_decode(out["sequences"], skip_special_tokens=True)[0].strip()
    return text, segments, used, detected


def transcribe(loaded, audios: list[np.ndarray], batch_size: int = 8, progress: bool = True, warmup: bool = True,
               options: DecodingOptions | None = None, languages: list[str | None] | None = None) -> Transcription:
    """Transcribe clips (any runtime). `languages`: per clip, a language to force (None: `options.language`,
    else detected); evaluation passes each clip's reference language."""
    options = check_options(loaded, options)
    languages = [None if x is None else generation.check_language_task(loaded.generation_config, loaded.name, x, None)
                 for x in (languages or [None] * len(audios))]
    if len(languages) != len(audios):
        raise ValueError("one language (or None) per clip")
    short = [i for i, a in enumerate(audios) if len(a) <= WINDOW]
    long = [i for i, a in enumerate(audios) if len(a) > WINDOW]
    if warmup and audios:  # first calls pay for allocation and kernel selection
        first = audios[short[0]] if short else audios[long[0]][:WINDOW]
        decode_windows(loaded, [first] * min(batch_size, max(1, len(short))), options)
    texts: list[str] = [""] * len(audios)
    used: list[str] = ["en"] * len(audios)
    detected: list = [None] * len(audios)
    elapsed = 0.0
    with tqdm(total=len(audios), desc="transcribing", unit="clip", disable=not progress) as bar:
        for start in range(0, len(short), batch_size):
            idx = short[start : start + batch_size]
            t0 = time.perf_counter()
            out = decode_windows(loaded, [audios[i] for i in idx], options, [languages[i] for i in idx])
            batch_texts = loaded.processor.batch_decode(out.ids, skip_special_tokens=True)
            elapsed += time.perf_counter() - t0
            for k, i in enumerate(idx):
                texts[i], used[i], detected[i] = batch_texts[k].strip(), out.languages[k], out.detected[k]
            bar.update(len(idx))
        for i in long:
            t0 = time.perf_counter()
            text, out = _long_one(loaded, audios[i], options, languages[i])
            elapsed += time.perf_counter() - t0
            texts[i], used[i], detected[i] = text.strip(), out.languages[0], out.detected[0]
            bar.update(1)
    return Transcription(texts, elapsed, used, detected)


def language_options(language: str | None, task: str | None, prompt: str | None = None,
                     window: float | str | None = None) -> DecodingOptions:
    """DecodingOptions from command-line or form values (None: the default)."""
    if task is not None and task not in generation.TASKS:
        raise UserError(f"task must be one of {', '.join(generation.TASKS)}, got {task!r}")
    return DecodingOptions(language=language or None, task=task or "transcribe", prompt=prompt or None, window=window)
