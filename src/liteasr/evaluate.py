"""Word error rate the way the Open ASR Leaderboard computes it, and per-dataset evaluation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache

import jiwer

from . import whisper
from .audio import SAMPLE_RATE, Dataset, load_audio
from .transcribe import transcribe


@lru_cache(maxsize=1)
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    return _normalizer()(text)


@dataclass
class WerCounts:
    wer: float  # percent, corpus level: total edits / total reference words
    substitutions: int
    deletions: int
    insertions: int
    words: int
    n: int  # utterances scored
    excluded: int = 0  # utterances whose normalized reference is empty


def corpus_wer(references: list[str], hypotheses: list[str]) -> WerCounts:
    pairs = [(normalize(r), normalize(h)) for r, h in zip(references, hypotheses, strict=True)]
    kept = [(r, h) for r, h in pairs if r.strip()]
    if not kept:
        return WerCounts(0.0, 0, 0, 0, 0, 0, len(pairs))
    out = jiwer.process_words([r for r, _ in kept], [h for _, h in kept])
    words = out.hits + out.substitutions + out.deletions
    errors = out.substitutions + out.deletions + out.insertions
    return WerCounts(100.0 * errors / words, out.substitutions, out.deletions, out.insertions, words,
                     len(kept), len(pairs) - len(kept))


@dataclass
class DatasetResult:
    wer: float
    n: int
    words: int
    audio_s: float
    rtfx: float
    substitutions: int
    deletions: int
    insertions: int
    excluded: int
    transcripts: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("transcripts")
        return d


def evaluate_dataset(loaded: whisper.LoadedModel, dataset: Dataset, batch_size: int = 8,
                     progress: bool = True, language: str | None = None, task: str | None = None) -> DatasetResult:
    clips = [c for c in dataset.clips if c.text is not None]
    audios = [load_audio(c.path) for c in clips]
    result = transcribe(loaded, audios, batch_size=batch_size, progress=progress, language=language, task=task)
    counts = corpus_wer([c.text for c in clips], result.texts)
    audio_s = sum(len(a) for a in audios) / SAMPLE_RATE
    return DatasetResult(counts.wer, counts.n, counts.words, audio_s, audio_s / max(result.seconds, 1e-9),
                         counts.substitutions, counts.deletions, counts.insertions, counts.excluded,
                         [{"audio": str(c.path), "reference": c.text, "hypothesis": h}
                          for c, h in zip(clips, result.texts)])
