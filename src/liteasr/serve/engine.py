"""The server's one access to a model: load it, check request options, transcribe a batch.

Everything else in serve/ sees only `Engine`, so another runtime (ONNX, CTranslate2) can be
plugged in here without touching the server.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import runtime, whisper
from ..audio import SAMPLE_RATE
from ..errors import UserError
from ..transcribe import Segment, transcribe, transcribe_options, transcribe_segments


@dataclass(frozen=True)
class Options:
    """What a request asks for beyond its audio; requests batch together only when these are equal."""

    language: str | None = None
    task: str | None = None
    prompt: str | None = None
    timestamps: bool = False  # verbose_json / srt / vtt need segments


@dataclass
class Result:
    text: str
    duration: float  # seconds of audio
    language: str
    segments: list[Segment] | None = None


class Engine:
    def __init__(self, spec: str, device: str = "cpu", dtype: torch.dtype = torch.float32, attention: str = "auto"):
        self.loaded = runtime.load(spec, device=device, dtype=dtype, attention=attention)
        self.name = str(spec)

    def check(self, options: Options) -> None:
        """Raise UserError for options this model cannot honour (before the request is queued)."""
        if not isinstance(self.loaded, whisper.LoadedModel):  # ONNX Runtime / CTranslate2: plain greedy text
            if options.timestamps:
                raise UserError(f"{self.name}: timestamped formats (verbose_json, srt, vtt) need the PyTorch runtime")
        transcribe_options(self.loaded, options.language, options.task, options.prompt)

    def language(self, options: Options) -> str:
        from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

        if options.language is None:  # detected per window by multilingual models; not reported back
            config = getattr(self.loaded, "generation_config", None) or runtime.architecture(self.loaded).generation_config
            multilingual = getattr(config, "is_multilingual", False)
            return "unknown" if multilingual else "english"
        return LANGUAGES.get(TO_LANGUAGE_CODE.get(options.language.lower(), options.language.lower()), "unknown")

    def transcribe(self, audios: list[np.ndarray], options: Options) -> list[Result]:
        """Greedy transcription of a batch sharing `options` (clips over 30 s are decoded long-form)."""
        language = self.language(options)
        durations = [len(a) / SAMPLE_RATE for a in audios]
        if options.timestamps:  # one by one: generate's segments are per clip
            out = [transcribe_segments(self.loaded, a, options.language, options.task, options.prompt) for a in audios]
            return [Result(text, d, language, segments) for (text, segments), d in zip(out, durations)]
        texts = transcribe(self.loaded, audios, batch_size=len(audios), progress=False, warmup=False,
                           language=options.language, task=options.task, prompt=options.prompt).texts
        return [Result(text, d, language) for text, d in zip(texts, durations)]

    def warm_up(self) -> None:
        """First calls pay for allocation and kernel selection: pay them before the first request."""
        self.transcribe([np.zeros(SAMPLE_RATE, dtype=np.float32)], Options())
