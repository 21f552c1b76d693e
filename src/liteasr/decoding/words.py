"""Word timestamps, as openai/whisper and faster-whisper find them: one teacher-forced pass of the decoder
over a window's transcript, the cross-attention of the alignment heads (models.generation.alignment_heads)
standardized and median-filtered, a dynamic-time-warping path from tokens to 20 ms audio frames, and each
word's start and end where the path enters its first token and leaves its last. Their heuristics follow:
words at sentence and segment boundaries are kept to twice the median word length, punctuation joins its
word, and a segment's ends move to its words' (or its words' to its own, where a word would run 0.5 s past).

The decoder is not compressed, so the alignment heads a Whisper model came with still follow the audio; the
encoder states they attend to are the compressed encoder's. Runtimes provide `cross_attentions(encoded,
tokens, heads)` (PyTorch, ONNX Runtime) or their own `align(encoded, start, text, frames)` (CTranslate2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from liteasr.models import generation

MEDIAN_FILTER_WIDTH = 7  # openai/whisper's and CTranslate2's
TOKENS_PER_SECOND = 50  # encoder frames: one per 20 ms
PREPEND_PUNCTUATION = "\"'“¿([{-"
APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"
SENTENCE_ENDS = ".。!！?？"


@dataclass
class Word:
    """A word with its leading space as Whisper writes it, its time in seconds from the start of the clip,
    and the mean probability of its tokens."""

    start: float
    end: float
    word: str
    probability: float


@dataclass
class _Timing:
    word: str
    tokens: list[int]
    start: float
    end: float
    probability: float


def _dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The monotonic path of least cost from (0, 0) to the last token and frame: (token, frame) indices."""
    from transformers.models.whisper.generation_whisper import _dynamic_time_warping

    return _dynamic_time_warping(cost)


def _path(loaded, encoded, start: list[int], text: list[int], frames: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(token, frame) indices of the alignment path over `text` + end-of-text, and each text token's
    probability under the forced pass."""
    if hasattr(loaded, "align"):  # a runtime with its own alignment (CTranslate2)
        return loaded.align(encoded, start, text, frames)
    config = loaded.generation_config
    eot = generation.end_of_text(config)
    tokens = [*start, config.no_timestamps_token_id, *text, eot]
    heads = generation.alignment_heads(config, loaded.config)
    weights, logits = loaded.cross_attentions(encoded, tokens, heads)
    logits = torch.from_numpy(logits[len(start):, :eot]).double()
    probs = torch.softmax(logits, -1)[torch.arange(len(text)), torch.tensor(text, dtype=torch.long)].tolist()
    # openai/whisper takes the softmax over the speech frames only: the full softmax, renormalized there
    weights = torch.from_numpy(weights[:, :, : frames // 2]).double()
    weights = weights / weights.sum(-1, keepdim=True)
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = (weights - mean) / std
    from transformers.models.whisper.generation_whisper import _median_filter

    matrix = _median_filter(weights, MEDIAN_FILTER_WIDTH).mean(0)[len(start) : -1]
    text_indices, time_indices = _dtw_path(-matrix.numpy())
    return text_indices, time_indices, probs


def _split_words(loaded, tokens: list[int], language: str) -> tuple[list[str], list[list[int]]]:
    """Words and their tokens (the last, end-of-text alone): at spaces and punctuation, or at characters for
    languages written without spaces."""
    from transformers.models.whisper.tokenization_whisper import _split_tokens_on_spaces, _split_tokens_on_unicode

    split = _split_tokens_on_unicode if language in generation.WITHOUT_SPACES else _split_tokens_on_spaces
    words, word_tokens, _ = split(loaded.processor.tokenizer, tokens)
    return words, word_tokens


def align_words(loaded, encoded, start: list[int], text: list[int], frames: int, language: str) -> list[_Timing]:
    """Each word of `text` (one window's text tokens) with its start and end in seconds from the window's
    start. `start`: the prompt's start tokens (<|startoftranscript|>, language, task); `frames`: the
    window's mel frames that hold audio."""
    if not text:
        return []
    text_indices, time_indices, probs = _path(loaded, encoded, start, text, frames)
    words, word_tokens = _split_words(loaded, text + [generation.end_of_text(loaded.generation_config)], language)
    if len(word_tokens) <= 1:
        return []
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(np.asarray(text_indices)), (1, 0), constant_values=1).astype(bool)
    jump_times = np.asarray(time_indices)[jumps] / TOKENS_PER_SECOND
    return [_Timing(word, tokens, float(jump_times[i]), float(jump_times[j]), float(np.mean(probs[i:j])))
            for word, tokens, i, j in zip(words, word_tokens, boundaries[:-1], boundaries[1:])]


def _merge_punctuation(timings: list[_Timing]) -> None:
    """Opening punctuation joins the word after it, closing punctuation the word before; the word keeps its
    own times. Emptied entries stay (their tokens counted) so that words can be assigned to segments."""
    i, j = len(timings) - 2, len(timings) - 1
    while i >= 0:
        previous, following = timings[i], timings[j]
        if previous.word.startswith(" ") and previous.word.strip() in PREPEND_PUNCTUATION:
            following.word, following.tokens = previous.word + following.word, previous.tokens + following.tokens
            previous.word, previous.tokens = "", []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(timings):
        previous, following = timings[i], timings[j]
        if not previous.word.endswith(" ") and following.word in APPEND_PUNCTUATION:
            previous.word, previous.tokens = previous.word + following.word, previous.tokens + following.tokens
            following.word, following.tokens = "", []
        else:
            i = j
        j += 1


def add_words(loaded, encoded, segments: list, start: list[int], frames: int, language: str, offset: float,
              last_speech: float) -> float:
    """Set `words` on one window's segments (decoding.transcribe.Segment, times from the clip's start;
    `offset`: the window's start) and adjust their ends to them, as openai/whisper does; returns where speech
    last ended, for the next window."""
    eot = generation.end_of_text(loaded.generation_config)
    per_segment = [[t for t in s.tokens if t < eot] for s in segments]
    timings = align_words(loaded, encoded, start, [t for tokens in per_segment for t in tokens], frames, language)
    durations = np.array([t.end - t.start for t in timings])
    durations = durations[durations.nonzero()]
    median = min(0.7, float(np.median(durations))) if len(durations) else 0.0
    longest = 2 * median
    if len(durations):  # a word at a sentence boundary that spans a pause is cut to twice the median
        for i in range(1, len(timings)):
            if timings[i].end - timings[i].start > longest:
                if timings[i].word in SENTENCE_ENDS:
                    timings[i].end = timings[i].start + longest
                elif timings[i - 1].word in SENTENCE_ENDS:
                    timings[i].start = timings[i].end - longest
    _merge_punctuation(timings)
    index = 0
    for segment, tokens in zip(segments, per_segment):
        words, taken = [], 0
        while index < len(timings) and taken < len(tokens):
            t = timings[index]
            if t.word:
                words.append(Word(round(offset + t.start, 2), round(offset + t.end, 2), t.word, t.probability))
            taken += len(t.tokens)
            index += 1
        if words:
            _fit(segment, words, median, longest, last_speech)
            last_speech = segment.end
        segment.words = words
    return last_speech


def _fit(segment, words: list[Word], median: float, longest: float, last_speech: float) -> None:
    """openai/whisper's boundary rules: the first words after a pause are kept to twice the median length;
    a segment's start and end follow its words unless a word would run 0.5 s past the segment's own."""
    first = words[0]
    if first.end - last_speech > 4 * median and (
            first.end - first.start > longest or (len(words) > 1 and words[1].end - first.start > 2 * longest)):
        if len(words) > 1 and words[1].end - words[1].start > longest:
            boundary = max(words[1].end / 2, words[1].end - longest)
            first.end = words[1].start = boundary
        first.start = max(0.0, first.end - longest)
    if segment.start < first.end and segment.start - 0.5 > first.start:
        first.start = max(0.0, min(first.end - median, segment.start))
    else:
        segment.start = first.start
    last = words[-1]
    if segment.end > last.start and segment.end + 0.5 < last.end:
        last.end = max(last.start + median, segment.end)
    else:
        segment.end = last.end
