"""Batched transcription on any runtime, with liteasr's own prompt: the given or detected language and
the task (`transcribe` unless asked), as openai/whisper and faster-whisper build it; greedy by default
(DecodingOptions), or beam search with the temperature fallback (DecodingOptions.like_faster_whisper()).
Clips over 30 s are decoded long-form rather than cut off.

A runtime (whisper.LoadedModel for PyTorch, runtime.OnnxModel, runtime.CT2Model) provides
`generation_config`, `processor`, `features(audios)`, `encode(features)`, `detect_language(encoded)`
(codes and probabilities) and a decoder stepper or its own search (decoding/search.py); the prompt, the
token budget, the search and the language bookkeeping are built here, once for all of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from liteasr.data.audio import SAMPLE_RATE, load_audio
from liteasr.decoding import search
from liteasr.decoding.words import Word, add_words
from liteasr.errors import UserError
from liteasr.models import generation, whisper

WINDOW = whisper.WINDOW_SECONDS * SAMPLE_RATE


FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
WINDOW_END_THRESHOLD = 0.3  # of 0.3, 0.5, 0.7, 0.9 the best on development draws: research/window/ending.md
LOOP_COMPRESSION_RATIO = 2.4  # openai/whisper's: text that compresses better than this repeats itself


@dataclass(frozen=True)
class DecodingOptions:
    """What to decode beyond the audio. `language`: a code or English name; None detects it per clip on
    multilingual models (English-only models take only `en`). `task`: `transcribe` or `translate` (into
    English; multilingual models). `prompt`: text the transcript continues from.

    The search, with faster-whisper's names. The defaults are greedy without fallback (the Open ASR
    Leaderboard's convention, and `liteasr eval`'s); `like_faster_whisper()` gives faster-whisper's
    defaults (`liteasr transcribe` and `serve`): beam search with 5 beams, then, for a clip whose
    transcript compresses too well (a loop) or whose tokens are too unlikely, sampling at each next
    temperature (the best of `best_of` samples); a clip whose no-speech probability passes its threshold
    while its tokens are unlikely is silence: an empty transcript."""

    language: str | None = None
    task: str = "transcribe"
    prompt: str | None = None
    # The encoder window of clips up to 30 s: None, the model's own (recorded in its checkpoint by `compress
    # --window`; 30 s padding without one); "auto", the model's own, an error for a model that records none
    # (not healed for short windows, it loops on them); a number, a floor in seconds with the model's (or
    # the default) margin (30: Whisper's padded window); or a whisper.WindowPolicy.
    window: float | str | whisper.WindowPolicy | None = None
    # On a short window a model can stop after its first sentence, or loop: a clip whose transcript there
    # ends unsurely (an end-of-text less likely than this, or none within the token budget) or loops (its
    # text compresses better than LOOP_COMPRESSION_RATIO) is decoded again on the padded 30 s window.
    # None: keep the short window's text.
    window_end_threshold: float | None = WINDOW_END_THRESHOLD
    beam_size: int = 1
    best_of: int = 5  # samples per clip at a temperature above 0
    temperature: tuple[float, ...] = (0.0,)  # tried in order while a guard trips
    compression_ratio_threshold: float | None = None  # gzip ratio of the text above which to fall back
    log_prob_threshold: float | None = None  # average log-probability below which to fall back
    no_speech_threshold: float | None = None  # <|nospeech|> probability above which unlikely text is silence
    condition_on_previous_text: bool = False  # long-form: each 30 s window continues the previous one's text
    word_timestamps: bool = False  # each segment's words with their times (transcribe_segments; decoding/words.py)
    seed: int = 0  # for sampling: the same options give the same text

    @classmethod
    def like_faster_whisper(cls, **changes) -> "DecodingOptions":
        defaults = dict(beam_size=5, best_of=5, temperature=FALLBACK_TEMPERATURES, compression_ratio_threshold=2.4,
                        log_prob_threshold=-1.0, no_speech_threshold=0.6, condition_on_previous_text=True)
        return cls(**{**defaults, **changes})


@dataclass
class Transcription:
    texts: list[str]
    seconds: float  # features + encoder + decoding, warm-up excluded
    languages: list[str]  # the language each clip was decoded in (code; `en` for English-only models)
    # The language the model hears and its probability (multilingual models; None for English-only ones).
    # Computed even when the language is given, so that evaluation can report language-ID errors.
    detected: list[tuple[str, float] | None]
    # Per clip up to 30 s, the hypothesis kept (tokens, avg_logprob, compression_ratio, no_speech_prob,
    # temperature) and how many temperatures it took; None for long-form clips.
    hypotheses: list[search.Hypothesis | None] | None = None
    attempts: list[int] | None = None
    padded_again: list[bool] | None = None  # decoded again on the padded window (window_end_threshold)


def check_options(loaded, options: DecodingOptions | None) -> DecodingOptions:
    """Options checked against the model, the language as its code and the window as a WindowPolicy;
    UserError names what is wrong."""
    options = options or DecodingOptions()
    code = generation.check_language_task(loaded.generation_config, loaded.name, options.language, options.task)
    check_search(options)
    if options.word_timestamps and not getattr(loaded, "aligns", True):
        raise UserError(f"{loaded.name} was exported without word timestamps: export it again with this liteasr")
    return replace(options, language=code, task=options.task or "transcribe", window=window_policy(loaded, options.window),
                   temperature=tuple(float(t) for t in options.temperature))


def check_search(options: DecodingOptions) -> None:
    """UserError, in the words of the command-line options, for search settings that cannot work."""
    if not isinstance(options.beam_size, int) or options.beam_size < 1:
        raise UserError(f"beam size must be a whole number of at least 1, got {options.beam_size!r}")
    if not isinstance(options.best_of, int) or options.best_of < 1:
        raise UserError(f"best-of must be a whole number of at least 1, got {options.best_of!r}")
    temps = options.temperature
    if not temps or any(not isinstance(t, (int, float)) or not 0 <= t <= 2 for t in temps):
        raise UserError(f"temperature must be one or more numbers from 0 to 2, got {temps!r}")
    if options.compression_ratio_threshold is not None and options.compression_ratio_threshold <= 0:
        raise UserError(f"compression ratio threshold must be above 0, got {options.compression_ratio_threshold}")
    if options.log_prob_threshold is not None and options.log_prob_threshold > 0:
        raise UserError(f"log-prob threshold must be at most 0, got {options.log_prob_threshold}")
    if options.no_speech_threshold is not None and not 0 <= options.no_speech_threshold <= 1:
        raise UserError(f"no-speech threshold must be from 0 to 1, got {options.no_speech_threshold}")
    if options.window_end_threshold is not None and not 0 <= options.window_end_threshold <= 1:
        raise UserError(f"window end threshold must be from 0 to 1, got {options.window_end_threshold}")


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
    config = loaded.config
    return generation.previous_text_ids(loaded.processor, loaded.generation_config, config.max_target_positions,
                                     options.prompt)


@dataclass
class Decoded:
    ids: list[list[int]]  # tokens after the prompt, without end-of-text
    languages: list[str]
    detected: list[tuple[str, float] | None]
    hypotheses: list[search.Hypothesis | None]
    attempts: list[int]  # temperatures tried per clip
    padded_again: list[bool]  # decoded again on the padded window (ends_unsurely)


def decode_windows(loaded, audios: list[np.ndarray], options: DecodingOptions,
                   languages: list[str | None] | None = None) -> Decoded:
    """Tokens for clips of at most 30 s, one batch, searched as `options` say. A clip's language:
    `languages[i]`, else `options.language`, else the detected one. Under a short-window policy the clips
    are grouped by window length (bucketed): each clip decodes as it would alone, and a clip whose
    transcript ends unsurely there is decoded again on the padded window (DecodingOptions.window_end_threshold)."""
    policy = options.window if isinstance(options.window, whisper.WindowPolicy) else whisper.PADDED
    if policy.padded:
        return _decode_group(loaded, audios, options, languages, None)
    given = languages or [None] * len(audios)
    buckets: dict[int, list[int]] = {}
    for i, audio in enumerate(audios):
        buckets.setdefault(policy.frames(len(audio)), []).append(i)
    n = len(audios)
    out = Decoded([[]] * n, [""] * n, [None] * n, [None] * n, [0] * n, [False] * n)
    unsure: list[int] = []
    for frames, idx in sorted(buckets.items()):
        _fill(out, idx, _decode_group(loaded, [audios[i] for i in idx], options, [given[i] for i in idx], frames))
        if frames < whisper.PADDED.frames(0):
            unsure += [i for i in idx if ends_unsurely(out.hypotheses[i], options)]
    if unsure:  # together, on the padded window
        _fill(out, unsure, _decode_group(loaded, [audios[i] for i in unsure], options, [given[i] for i in unsure], None))
        for i in unsure:
            out.padded_again[i] = True
    return out


def _fill(out: Decoded, idx: list[int], part: Decoded) -> None:
    for k, i in enumerate(idx):
        out.ids[i], out.languages[i], out.detected[i] = part.ids[k], part.languages[k], part.detected[k]
        out.hypotheses[i], out.attempts[i] = part.hypotheses[k], part.attempts[k]


def ends_unsurely(h: search.Hypothesis, options: DecodingOptions) -> bool:
    """A short window's transcript that may have stopped early or looped: no end-of-text within the token
    budget, one less likely than `window_end_threshold`, or text that compresses like a loop."""
    if options.window_end_threshold is None:
        return False
    if h.end_logprob is None or h.compression_ratio > LOOP_COMPRESSION_RATIO:
        return True
    return h.end_logprob < float(np.log(max(options.window_end_threshold, 1e-30)))


def _decode_group(loaded, audios: list[np.ndarray], options: DecodingOptions, languages: list[str | None] | None,
                  frames: int | None) -> Decoded:
    config = loaded.generation_config
    encoded = loaded.encode(loaded.features(audios) if frames is None else loaded.features(audios, frames))
    detected: list = [None] * len(audios)
    if generation.is_multilingual(config):
        codes, probs = loaded.detect_language(encoded)
        detected = list(zip(codes, probs))
    given = languages or [None] * len(audios)
    used = [g or options.language or (d[0] if d else "en") for g, d in zip(given, detected)]
    previous = _previous(loaded, options)
    prompt = generation.build_prompt(config, used, options.task, previous)
    budget = generation.token_budget(max(len(a) for a in audios), config.max_length, len(previous))
    hypotheses, attempts = decode_with_fallback(loaded, encoded, prompt, len(previous), budget, options)
    silent = [is_silence(h, options) for h in hypotheses]
    return Decoded([[] if q else h.tokens for h, q in zip(hypotheses, silent)], used, detected, hypotheses, attempts,
                   [False] * len(audios))


def search_tokens(loaded, timestamps: bool = False) -> search.Tokens:
    config, tokenizer = loaded.generation_config, loaded.processor.tokenizer
    return search.Tokens(_eot(loaded), tuple(config.suppress_tokens or ()), tuple(config.begin_suppress_tokens or ()),
                         generation.no_speech_id(tokenizer),
                         config.no_timestamps_token_id + 1 if timestamps else None, config.no_timestamps_token_id)


def _eot(loaded) -> int:
    return generation.end_of_text(loaded.generation_config)


def _text(loaded, ids: list[int]) -> str:
    """The text of tokens, timestamps and other special tokens left out (they come after end-of-text)."""
    eot = _eot(loaded)
    return loaded.processor.decode([t for t in ids if t < eot])


def _take(x, rows: list[int]):
    """Rows of encoder states of any runtime (torch, numpy, a CTranslate2 StorageView on the CPU)."""
    if isinstance(x, torch.Tensor):
        return x[torch.as_tensor(rows, device=x.device)]
    return np.asarray(x)[rows]


def _search_once(loaded, encoded, prompt: torch.Tensor, sot_index: int, budget: int, options: DecodingOptions,
                 temperature: float, generators: list[torch.Generator], timestamps: bool) -> list[search.Hypothesis]:
    """Each clip's best hypothesis at one temperature: beam search at 0 (or greedy with one beam), else
    the best of `best_of` samples."""
    if hasattr(loaded, "search"):  # a runtime with its own search (CTranslate2)
        found = loaded.search(encoded, prompt, budget, options.beam_size, options.best_of, temperature, options.seed)
        return [search.best([search.Hypothesis(list(ids), total, no_speech, temperature)
                             for ids, total, no_speech in hyps]) for hyps in found]
    stepper = loaded.start_decoder(encoded, prompt, sot_index)
    tokens = search_tokens(loaded, timestamps)
    if temperature == 0 and options.beam_size > 1:
        found = search.beam_search(stepper, tokens, budget, options.beam_size)
    else:
        candidates = options.best_of if temperature > 0 else 1
        if candidates > 1:
            stepper.select(torch.arange(len(prompt)).repeat_interleave(candidates))
        found = search.sample(stepper, tokens, budget, candidates, temperature, generators)
    return [search.best(h) for h in found]


def needs_fallback(h: search.Hypothesis, options: DecodingOptions) -> bool:
    """openai/whisper's guards: a loop (the text compresses too well) or unlikely tokens, unless silence."""
    fail = False
    if options.compression_ratio_threshold is not None and h.compression_ratio > options.compression_ratio_threshold:
        fail = True
    if options.log_prob_threshold is not None and h.avg_logprob < options.log_prob_threshold:
        fail = True
    if (options.no_speech_threshold is not None and h.no_speech_prob > options.no_speech_threshold
            and options.log_prob_threshold is not None and h.avg_logprob < options.log_prob_threshold):
        fail = False  # silence: no temperature will find words in it
    return fail


def is_silence(h: search.Hypothesis, options: DecodingOptions) -> bool:
    """faster-whisper's skip: a likely no-speech window whose tokens are not confidently likely."""
    if options.no_speech_threshold is None or h.no_speech_prob <= options.no_speech_threshold:
        return False
    return options.log_prob_threshold is None or h.avg_logprob <= options.log_prob_threshold


def decode_with_fallback(loaded, encoded, prompt: torch.Tensor, sot_index: int, budget: int,
                         options: DecodingOptions, timestamps: bool = False) -> tuple[list[search.Hypothesis], list[int]]:
    """Each clip's hypothesis and the number of temperatures it took. Clips whose guard trips are decoded
    again, together, at the next temperature; the others are done (a clip that falls back does not hold
    them). When every temperature trips, faster-whisper's choice: the most likely (per token) of the
    attempts that do not loop, else of all."""
    n = len(prompt)
    generators = [torch.Generator().manual_seed(options.seed) for _ in range(n)]  # per clip: batch-independent
    chosen: list[search.Hypothesis | None] = [None] * n
    tried: list[list[search.Hypothesis]] = [[] for _ in range(n)]
    pending = list(range(n))
    for temperature in options.temperature:
        if not pending:
            break
        subset = pending if len(pending) < n else None
        hyps = _search_once(loaded, encoded if subset is None else _take(encoded, subset),
                            prompt if subset is None else prompt[subset], sot_index, budget, options, temperature,
                            [generators[i] for i in pending], timestamps)
        still = []
        for i, h in zip(pending, hyps):
            h.compression_ratio = search.compression_ratio(_text(loaded, h.tokens))
            tried[i].append(h)
            if needs_fallback(h, options):
                still.append(i)
            else:
                chosen[i] = h
        pending = still
    threshold = options.compression_ratio_threshold
    for i in pending:
        calm = [h for h in tried[i] if threshold is None or h.compression_ratio <= threshold]
        chosen[i] = max(calm or tried[i], key=lambda h: h.avg_logprob)
    return chosen, [len(t) for t in tried]


@dataclass
class Segment:
    """A stretch of speech between two timestamps, with the search's scores for its 30 s window (as
    openai/whisper reports them: every segment of a window shares them)."""

    start: float  # seconds from the start of the clip
    end: float
    text: str
    tokens: list[int]
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    temperature: float = 0.0
    words: list[Word] | None = None  # with DecodingOptions.word_timestamps


FRAME_SECONDS = whisper.MEL_HOP / SAMPLE_RATE  # one mel frame, 10 ms
TIMESTAMP_SECONDS = 0.02  # one timestamp token step (two mel frames)


def _split(loaded, tokens: list[int], offset: float, window_s: float, hyp: search.Hypothesis
           ) -> tuple[list[Segment], float]:
    """openai/whisper's reading of one window's tokens: segments between consecutive timestamp pairs, and
    how far (seconds) the window's finished segments reach: the next window starts there."""
    begin = loaded.generation_config.no_timestamps_token_id + 1
    is_stamp = [t >= begin for t in tokens]
    scores = dict(avg_logprob=hyp.avg_logprob, compression_ratio=hyp.compression_ratio,
                  no_speech_prob=hyp.no_speech_prob, temperature=hyp.temperature)
    pairs = [i + 1 for i in range(len(tokens) - 1) if is_stamp[i] and is_stamp[i + 1]]
    single_ending = is_stamp[-2:] == [False, True]
    segments = []
    if pairs:
        cuts = pairs + ([len(tokens)] if single_ending else [])
        last = 0
        for cut in cuts:
            part = tokens[last:cut]
            start, end = (part[0] - begin) * TIMESTAMP_SECONDS, (part[-1] - begin) * TIMESTAMP_SECONDS
            segments.append(Segment(offset + start, offset + end, _text(loaded, part).strip(), part, **scores))
            last = cut
        advance = window_s if single_ending else (tokens[last - 1] - begin) * TIMESTAMP_SECONDS
    else:
        stamps = [t for t in tokens if t >= begin]
        end = (stamps[-1] - begin) * TIMESTAMP_SECONDS if stamps and stamps[-1] != begin else window_s
        segments.append(Segment(offset, offset + end, _text(loaded, tokens).strip(), tokens, **scores))
        advance = window_s
    return [g for g in segments if g.text], advance


@dataclass
class _LongForm:
    """One clip's place in the long-form loop (_seek)."""

    audio: np.ndarray
    language: str | None  # None: detected on its first window
    detected: tuple[str, float] | None = None
    position: float = 0.0  # seconds: where its next window starts
    said: list[int] = field(default_factory=list)  # tokens later windows continue from
    segments: list[Segment] = field(default_factory=list)
    last_speech: float = 0.0  # where its last word ended (word timestamps)

    @property
    def done(self) -> bool:
        return self.position >= len(self.audio) / SAMPLE_RATE - FRAME_SECONDS

    def text(self, loaded) -> str:
        return "".join(_text(loaded, g.tokens) for g in self.segments).strip()


def _seek(loaded, audios: list[np.ndarray], options: DecodingOptions, languages: list[str | None],
          batch_size: int = 8) -> list[_LongForm]:
    """openai/whisper's long-form transcription on any runtime: 30 s windows decoded with timestamps, each
    starting where the previous one's last finished segment ended, each prompted with the text so far
    (`condition_on_previous_text`; not after text sampled above temperature 0.5), each with the fallback
    and its guards; a window judged silence is skipped. A clip's language: `languages[i]`, else
    `options.language`, else detected on its first window (reported in `detected`).

    Clips advance together, one window each per round, in batches of clips whose prompts have one length
    (every clip's first window; later windows when their previous text is as long), so a batch of clips up
    to 30 s decodes as a batch and each clip gets the windows it would get alone (its token budget is its
    batch's, as in decode_windows)."""
    config = loaded.generation_config
    max_prompt = loaded.config.max_target_positions // 2 - 1
    initial = _previous(loaded, options)[1:]  # the user's prompt, without <|startofprev|>
    multilingual = generation.is_multilingual(config)
    clips = [_LongForm(a, language or options.language or (None if multilingual else "en"))
             for a, language in zip(audios, languages)]
    while active := [c for c in clips if not c.done]:
        by_length: dict[int, list[tuple[_LongForm, list[int]]]] = {}
        for clip in active:
            context = (initial + clip.said)[-max_prompt:]
            by_length.setdefault(len(context), []).append((clip, context))
        for members in by_length.values():
            for start in range(0, len(members), batch_size):
                _next_windows(loaded, members[start : start + batch_size], options)
    for clip in clips:
        clip.language = clip.language or "en"  # a clip under one frame long: nothing to detect or decode
    return clips


def _next_windows(loaded, members: list[tuple[_LongForm, list[int]]], options: DecodingOptions) -> None:
    """Decode the next window of each clip (their previous texts `members[i][1]` have one length) and move
    each clip on."""
    config = loaded.generation_config
    eot = _eot(loaded)
    start_of_prev = loaded.processor.tokenizer.convert_tokens_to_ids("<|startofprev|>")
    chunks = [c.audio[round(c.position * SAMPLE_RATE) : round(c.position * SAMPLE_RATE) + WINDOW] for c, _ in members]
    encoded = loaded.encode(loaded.features(chunks))
    if any(c.language is None for c, _ in members):  # first windows: the clip's first 30 s
        codes, probs = loaded.detect_language(encoded)
        for (clip, _), code, prob in zip(members, codes, probs):
            if clip.language is None:
                clip.language, clip.detected = code, (code, prob)
    previous = [[start_of_prev, *context] if context else [] for _, context in members]
    prompt = torch.cat([generation.build_prompt(config, [c.language], options.task, p, timestamps=True)
                        for (c, _), p in zip(members, previous)])
    budget = generation.token_budget(max(len(x) for x in chunks), config.max_length, len(previous[0]))
    hypotheses, _ = decode_with_fallback(loaded, encoded, prompt, len(previous[0]), budget, options, timestamps=True)
    for k, ((clip, _), chunk, hyp) in enumerate(zip(members, chunks, hypotheses)):
        window_s = len(chunk) / SAMPLE_RATE
        if is_silence(hyp, options) or not hyp.tokens:
            clip.position += window_s
            continue
        found, advance = _split(loaded, hyp.tokens, clip.position, window_s, hyp)
        if options.word_timestamps and found:
            start = generation.build_prompt(config, [clip.language], options.task, timestamps=True)[0].tolist()
            clip.last_speech = add_words(loaded, _take(encoded, [k]), found, start, round(len(chunk) / whisper.MEL_HOP),
                                         clip.language, clip.position, clip.last_speech)
        clip.segments += found
        clip.position += max(advance, TIMESTAMP_SECONDS)  # always forward
        if options.condition_on_previous_text and hyp.temperature <= 0.5:
            clip.said += [t for t in hyp.tokens if t != eot]
        else:
            clip.said = []


def transcribe_segments(loaded, audio, options: DecodingOptions | None = None, batch_size: int = 8):
    """One clip (a 16 kHz array or an audio file) with Whisper's timestamps (any runtime; 30 s windows): the
    text, its segments with their scores (and words, with `options.word_timestamps`), the language it was
    decoded in and the detected language with its probability (None when the language was given).

    A list of clips gives a list of those, decoded `batch_size` clips at a time (see _seek)."""
    if isinstance(audio, (str, Path)) or isinstance(audio, np.ndarray) and audio.ndim == 1:
        return transcribe_segments(loaded, [audio], options, batch_size)[0]
    audios = [load_audio(a) if isinstance(a, (str, Path)) else a for a in audio]
    options = check_options(loaded, options)
    clips = _seek(loaded, audios, options, [None] * len(audios), batch_size)
    return [(c.text(loaded), c.segments, c.language, c.detected) for c in clips]


def batches_by_window(samples: list[int], options: DecodingOptions, batch_size: int,
                      items: list[int] | None = None) -> list[list[int]]:
    """`items` (default: every index of `samples`, each clip's length) in batches of at most `batch_size`.
    Under a short-window policy each batch holds clips of one window length: decode_windows would split a
    batch of mixed lengths into one batch per length, and batches of one or two clips decode far slower per
    clip than batches of eight (dense tiny.en, healed window: RTFx 31 -> 50 on 80 clips)."""
    items = list(range(len(samples))) if items is None else items
    policy = options.window if isinstance(options.window, whisper.WindowPolicy) else whisper.PADDED
    if policy.padded:
        return [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
    groups: dict[int, list[int]] = {}
    for i in items:
        groups.setdefault(policy.frames(samples[i]), []).append(i)
    return [group[start : start + batch_size] for _, group in sorted(groups.items())
            for start in range(0, len(group), batch_size)]


def transcribe(loaded, audios: list[np.ndarray | str | Path], batch_size: int = 8, progress: bool = True,
               warmup: bool = True, options: DecodingOptions | None = None,
               languages: list[str | None] | None = None) -> Transcription:
    """Transcribe clips (any runtime): 16 kHz float arrays, or audio files (read and resampled as the CLI
    reads them); one clip alone may be given without a list. `languages`: per clip, a language to force
    (None: `options.language`, else detected); evaluation passes each clip's reference language."""
    if isinstance(audios, (str, Path)) or isinstance(audios, np.ndarray) and audios.ndim == 1:
        audios = [audios]
    audios = [load_audio(a) if isinstance(a, (str, Path)) else a for a in audios]
    options = check_options(loaded, options)
    if options.word_timestamps:
        raise UserError("word timestamps come with segments: transcribe_segments(model, audio, options)")
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
    hypotheses: list = [None] * len(audios)
    attempts: list = [0] * len(audios)
    padded_again = [False] * len(audios)
    elapsed = 0.0
    with tqdm(total=len(audios), desc="transcribing", unit="clip", disable=not progress) as bar:
        for idx in batches_by_window([len(a) for a in audios], options, batch_size, short):
            t0 = time.perf_counter()
            out = decode_windows(loaded, [audios[i] for i in idx], options, [languages[i] for i in idx])
            batch_texts = loaded.processor.batch_decode(out.ids, skip_special_tokens=True)
            elapsed += time.perf_counter() - t0
            for k, i in enumerate(idx):
                texts[i], used[i], detected[i] = batch_texts[k].strip(), out.languages[k], out.detected[k]
                hypotheses[i], attempts[i], padded_again[i] = out.hypotheses[k], out.attempts[k], out.padded_again[k]
            bar.update(len(idx))
        for start in range(0, len(long), batch_size):
            idx = long[start : start + batch_size]
            t0 = time.perf_counter()
            clips = _seek(loaded, [audios[i] for i in idx], options, [languages[i] for i in idx], batch_size)
            elapsed += time.perf_counter() - t0
            for i, clip in zip(idx, clips):
                texts[i], used[i], detected[i] = clip.text(loaded), clip.language, clip.detected
            bar.update(len(idx))
    return Transcription(texts, elapsed, used, detected, hypotheses, attempts, padded_again)


def language_options(language: str | None, task: str | None, prompt: str | None = None,
                     window: float | str | None = None, **search_options) -> DecodingOptions:
    """DecodingOptions from command-line or form values (None: the default; `search_options`: DecodingOptions'
    search fields)."""
    if task is not None and task not in generation.TASKS:
        raise UserError(f"task must be one of {', '.join(generation.TASKS)}, got {task!r}")
    options = DecodingOptions(language=language or None, task=task or "transcribe", prompt=prompt or None,
                              window=window, **search_options)
    check_search(options)
    return options
