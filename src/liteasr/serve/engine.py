"""The server's one access to a model: load it, check request options, transcribe a batch.

Everything else in serve/ sees only `Engine`, so another runtime (ONNX, CTranslate2) can be
plugged in here without touching the server.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from liteasr import runtime
from liteasr.data.audio import SAMPLE_RATE
from liteasr.decoding.search import Hypothesis
from liteasr.decoding.transcribe import (
    DecodingOptions,
    Segment,
    check_options,
    language_options,
    transcribe,
    transcribe_segments,
)
from liteasr.models import generation


@dataclass(frozen=True)
class Options:
    """What a request asks for beyond its audio; requests batch together only when these are equal."""

    language: str | None = None
    task: str | None = None
    prompt: str | None = None
    timestamps: bool = False  # verbose_json / srt / vtt need segments
    temperature: float | None = None  # the request's: one temperature, no fallback (as OpenAI's API)
    words: bool = False  # word timestamps (verbose_json)

    def decoding(self) -> DecodingOptions:
        return language_options(self.language, self.task, self.prompt, word_timestamps=self.words)


@dataclass
class Result:
    text: str
    duration: float  # seconds of audio
    language: str  # the language it was transcribed in, as OpenAI names it (`english`)
    segments: list[Segment] | None = None
    hypothesis: Hypothesis | None = None  # what the search kept (clips up to 30 s without timestamps)


class Engine:
    def __init__(self, spec: str, device: str = "cpu", dtype: torch.dtype = torch.float32, attention: str = "auto",
                 window: float | str | None = None, search: DecodingOptions | None = None):
        """`search`: the server's decoding (its search fields; default faster-whisper's), which a request's
        `temperature` narrows to that one temperature."""
        self._use(runtime.load(spec, device=device, dtype=dtype, attention=attention), str(spec), window, search)

    @classmethod
    def of(cls, loaded, name: str, window: float | str | None = None, search: DecodingOptions | None = None) -> "Engine":
        """An engine over a model already loaded (tests, embedding the server)."""
        engine = cls.__new__(cls)
        engine._use(loaded, name, window, search)
        return engine

    def _use(self, loaded, name: str, window, search: DecodingOptions | None) -> None:
        self.loaded, self.name = loaded, name
        self.search = check_options(loaded, search or DecodingOptions.like_faster_whisper())
        # the encoder window (DecodingOptions.window): the model's own unless the server is started with one
        self.window = check_options(loaded, replace(self.search, window=window)).window

    def check(self, options: Options) -> None:
        """Raise UserError for options this model cannot honour (before the request is queued)."""
        check_options(self.loaded, self._decoding(options))

    def _decoding(self, options: Options) -> DecodingOptions:
        own = options.decoding()
        search = replace(self.search, language=own.language, task=own.task, prompt=own.prompt, window=self.window,
                         word_timestamps=own.word_timestamps)
        if options.temperature is not None:
            search = replace(search, temperature=(options.temperature,))
        return search

    def transcribe(self, audios: list[np.ndarray], options: Options) -> list[Result]:
        """Transcription of a batch sharing `options` (clips over 30 s are decoded long-form)."""
        durations = [len(a) / SAMPLE_RATE for a in audios]
        decoding = self._decoding(options)
        if options.timestamps:
            out = transcribe_segments(self.loaded, audios, decoding, batch_size=len(audios))
            return [Result(text, d, generation.language_name(language), segments)
                    for (text, segments, language, _), d in zip(out, durations)]
        result = transcribe(self.loaded, audios, batch_size=len(audios), progress=False, warmup=False, options=decoding)
        return [Result(text, d, generation.language_name(language), hypothesis=h)
                for text, language, d, h in zip(result.texts, result.languages, durations, result.hypotheses)]

    def warm_up(self) -> None:
        """First calls pay for allocation and kernel selection: pay them before the first request."""
        self.transcribe([np.zeros(SAMPLE_RATE, dtype=np.float32)], Options())
