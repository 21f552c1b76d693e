"""Word error rate the way the Open ASR Leaderboard computes it (character error rate for languages written
without spaces), per language, and per-dataset evaluation."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache

import jiwer
from tqdm.auto import tqdm

from liteasr.data.audio import SAMPLE_RATE, Dataset, audio_samples, load_audio
from liteasr.decoding.transcribe import DecodingOptions, batches_by_window, check_options, transcribe
from liteasr.distributed import Group, current, gather_by_index
from liteasr.errors import UserError
from liteasr.models import generation

# Languages written without spaces between words: scored by characters (CER), as Whisper's paper does.
CHARACTER_LANGUAGES = generation.WITHOUT_SPACES


@lru_cache(maxsize=None)
def _normalizer(english: bool):
    if english:
        from whisper_normalizer.english import EnglishTextNormalizer

        return EnglishTextNormalizer()
    from whisper_normalizer.basic import BasicTextNormalizer

    # Whisper's basic normalizer (lower case, no punctuation or symbols), keeping combining marks: without
    # them it splits Devanagari and other abugida words at every vowel sign.
    return BasicTextNormalizer(preserve_marks=True)


# A run of single written digits, apart by spaces, commas or hyphens ("4, 4, 7, 2", "2-1-8"); not part of a
# longer number, a decimal or a word ("1984 2", "1.5 2", "2 3rd").
_DIGIT_RUN = re.compile(r"(?<![\w.,])\d(?:(?:[,;.]?\s+|-)\d)+(?!\w|[.,]\d)")
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Digits the normalizer joined into a number longer than this are a loop, not a number, and count digit by digit:
# no English reference in ../shared joins to more than 8 digits, and no phone number has more than 15.
LONGEST_NUMBER = 16


def _spelled(run: re.Match) -> str:
    return " ".join(_DIGIT_WORDS[int(d)] for d in run.group(0) if d.isdigit())


def normalize(text: str, language: str | None = "en") -> str:
    """Whisper's English normalizer for English (and unknown language, as English-only models), its
    basic normalizer for every other language (accents kept).

    One departure from the Open ASR Leaderboard, in English: written single digits in a row are spelled out
    first, so that they join as spelled ones do. Whisper's English normalizer joins spelled digits ("four,
    four, seven, two" -> "4472", "zero nine three" -> "093") but not written ones ("4, 4, 7, 2" -> "4 4 7
    2", and a lone 1 becomes "one"), so a right transcript in digits scored up to 4 errors against 1
    reference word. On speechocean, where 12% of the prompts are digit strings, that hid over a third of what
    beam search gains (research/decoding/hf_beams.md). Joined digits longer than LONGEST_NUMBER are split
    into single digits again, on both sides: a transcript that loops on digits, written or spelled, costs
    its length rather than the one long number Whisper's normalizer would make of it."""
    english = language in (None, "en")
    words = _normalizer(english)(_DIGIT_RUN.sub(_spelled, text) if english else text).split()
    return " ".join(" ".join(w) if english and w.isdigit() and len(w) > LONGEST_NUMBER else w for w in words)


def metric(language: str | None) -> str:
    """`cer` for languages written without spaces, else `wer`."""
    return "cer" if language in CHARACTER_LANGUAGES else "wer"


def _units(text: str, language: str | None) -> str:
    """The normalized text as space-separated scoring units: words, or characters (CER languages)."""
    text = normalize(text, language)
    return " ".join(text.replace(" ", "")) if metric(language) == "cer" else text


@dataclass
class WerCounts:
    wer: float  # percent, corpus level: total edits / total reference words (characters for CER languages)
    substitutions: int
    deletions: int
    insertions: int
    words: int
    n: int  # utterances scored
    excluded: int = 0  # utterances whose normalized reference is empty


def corpus_wer(references: list[str], hypotheses: list[str], language: str | None = "en") -> WerCounts:
    pairs = [(_units(r, language), _units(h, language)) for r, h in zip(references, hypotheses, strict=True)]
    kept = [(r, h) for r, h in pairs if r.strip()]
    if not kept:
        return WerCounts(0.0, 0, 0, 0, 0, 0, len(pairs))
    out = jiwer.process_words([r for r, _ in kept], [h for _, h in kept])
    words = out.hits + out.substitutions + out.deletions
    errors = out.substitutions + out.deletions + out.insertions
    return WerCounts(100.0 * errors / words, out.substitutions, out.deletions, out.insertions, words,
                     len(kept), len(pairs) - len(kept))


def utterance_errors(references: list[str], hypotheses: list[str], language: str | None = "en") -> list[tuple[int, int]]:
    """(edits, reference words) per utterance after normalization; (0, 0) for an empty reference,
    which corpus_wer leaves out as well."""
    out = []
    for r, h in zip(references, hypotheses, strict=True):
        r, h = _units(r, language), _units(h, language)
        if not r.strip():
            out.append((0, 0))
            continue
        m = jiwer.process_words(r, h)
        out.append((m.substitutions + m.deletions + m.insertions, m.hits + m.substitutions + m.deletions))
    return out


@dataclass
class PairedDelta:
    delta: float  # corpus WER of model B minus model A, percentage points
    low: float  # 95% interval from the paired bootstrap
    high: float
    resamples: int


def pooled_wer(errors: list[tuple[int, int]]) -> float:
    """WER in percent of utterances' (errors, reference words) counts taken as one corpus."""
    return 100.0 * sum(e for e, _ in errors) / max(sum(w for _, w in errors), 1)


def paired_bootstrap(a: list[tuple[int, int]], b: list[tuple[int, int]], resamples: int = 2000,
                     seed: int = 0) -> PairedDelta:
    """ΔWER (B - A) with a 95% interval: resample utterances with replacement, recompute both corpus
    WERs on the same resample, take the 2.5 / 97.5 percentiles of the difference."""
    return recipe_bootstrap([a], [b], resamples, seed)


def recipe_bootstrap(a_runs: list[list[tuple[int, int]]], b_runs: list[list[tuple[int, int]]],
                     resamples: int = 2000, seed: int = 0) -> PairedDelta:
    """ΔWER (B - A) of two recipes, each given by the per-utterance (errors, words) of one or more runs
    (e.g. seeds) over the same utterances; a recipe's errors are the mean over its runs. The interval
    resamples the utterances and, for a recipe of several runs, its runs too (with replacement): two
    draws of one recipe can differ by more than the utterances alone say. One run each: paired_bootstrap."""
    import numpy as np

    if any(len(run) != len(a_runs[0]) for side in (a_runs, b_runs) for run in side):
        raise ValueError("paired bootstrap needs the same utterances for both models")
    runs = [np.array([[e for e, _ in run] for run in side], dtype=np.float64) for side in (a_runs, b_runs)]
    n = np.array([w for _, w in a_runs[0]], dtype=np.float64)
    ea, eb = runs
    delta = 100.0 * (eb.mean(0).sum() - ea.mean(0).sum()) / max(n.sum(), 1.0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(n), size=(resamples, len(n)))
    words = np.maximum(n[idx].sum(1), 1.0)

    def resampled(e):  # [resamples]: errors over the resampled utterances, of a resample of the runs
        if len(e) == 1:
            return e[0][idx].sum(1)
        mean = e[rng.integers(0, len(e), size=(resamples, len(e)))].mean(1)
        return np.take_along_axis(mean, idx, 1).sum(1)

    deltas = 100.0 * (resampled(eb) - resampled(ea)) / words
    low, high = np.percentile(deltas, [2.5, 97.5])
    return PairedDelta(float(delta), float(low), float(high), resamples)


@dataclass
class DatasetResult:
    wer: float  # percent, in the dataset's `metric`: WER, or CER for languages written without spaces
    n: int
    words: int  # reference words (characters for CER)
    audio_s: float
    rtfx: float
    substitutions: int
    deletions: int
    insertions: int
    excluded: int
    language: str | None = None  # the spoken language scored (None: unknown, scored as English)
    metric: str = "wer"
    forced_language: bool = False  # decoded in the reference language rather than the detected one
    # Language identification (multilingual models, clips with a known language): clips whose detected
    # language differs from the reference one. Not in the WER: the language was forced.
    lid_errors: int | None = None
    lid_checked: int | None = None
    # Runaway outputs (a decoder that fails to stop repeats itself to its token budget): the longest
    # transcript against its reference, in scoring units, and how many exceed RUNAWAY times theirs.
    longest_ratio: float = 0.0
    runaways: int = 0
    # Temperature fallback (DecodingOptions.temperature with more than one value): clips decoded again
    # because a guard tripped (a loop or unlikely tokens).
    fallbacks: int = 0
    # Short windows (DecodingOptions.window_end_threshold): clips decoded again on the padded window because
    # their transcript ended unsurely on the short one.
    padded_again: int = 0
    # A set that states no language, on a multilingual model: how many clips were decoded in each detected
    # language. A clip detected wrong is transcribed in that language, and its errors count as word errors.
    decoded_languages: dict[str, int] | None = None
    transcripts: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("transcripts")
        return d


RUNAWAY = 3.0  # a transcript over 3x its reference's length (in words, or characters for CER) ran away


def _length(text: str, language: str | None) -> int:
    """Words with a letter or digit (characters, for CER languages) of the text as written: Whisper's
    normalizers would drop parenthesized words of a reference and join spelled digits ("three two two
    seven" -> "3227"), counting correct transcripts as several times their reference."""
    if metric(language) == "cer":
        return sum(ch.isalnum() for ch in text)
    return sum(any(ch.isalnum() for ch in word) for word in text.split())


def length_ratios(references: list[str], hypotheses: list[str], language: str | None) -> list[float]:
    """Each transcript's length over its reference's, in words (characters for CER languages)."""
    return [_length(h, language) / max(_length(r, language), 1) for r, h in zip(references, hypotheses, strict=True)]


def dataset_language(dataset: Dataset, options: DecodingOptions | None = None) -> str | None:
    """The one language of a dataset's clips (`options.language` when given); None if they say none.
    Mixed languages are an error: report.split_languages makes one dataset per language."""
    if options is not None and options.language:
        return generation.language_code(options.language)
    found = {c.language for c in dataset.clips}
    if len(found) > 1:
        raise UserError(f"{dataset.name}: clips in several languages ({', '.join(sorted(map(str, found)))}); "
                        "evaluate them one language at a time")
    return next(iter(found), None)


def evaluate_dataset(loaded, dataset: Dataset, batch_size: int = 8, progress: bool = True,
                     group: Group | None = None, options: DecodingOptions | None = None,
                     force_language: bool = True) -> DatasetResult:
    """Transcribe `dataset` batch by batch (only one batch of audio in memory) and score it.

    The dataset's language (`options.language`, else its clips' `language`) is forced by default, so that
    a language-ID mistake does not count as word errors; language-ID errors are reported beside
    (`lid_errors`). It picks the normalizer and the metric (CER for languages written without spaces).
    With no language known, multilingual models detect it per clip and the English normalizer scores.

    Batches are fixed blocks of `batch_size` clips (under a short-window policy, of clips of one window
    length: decoding.batches_by_window); under torchrun each process transcribes every
    world-th batch, and transcripts are gathered by clip index, so every clip is scored once and
    the result is the one-process result."""
    group = group or current()
    clips = [c for c in dataset.clips if c.text is not None]
    language = dataset_language(dataset, options)
    try:  # also resolves the window policy (batches below)
        resolved = check_options(loaded, replace(options or DecodingOptions(), language=language))
    except UserError as exc:
        raise UserError(f"{dataset.name}: {exc}") from None
    # a language the caller names is forced in any case; the data's own only with force_language
    force = force_language or bool(options is not None and options.language)
    forced = [language if force else None] * len(clips)
    decoding = replace(options or DecodingOptions(), language=None)
    texts, detected, attempts, again, samples, elapsed = {}, {}, {}, {}, 0, 0.0
    # a short-window policy batches clips of one window length together (their lengths from the headers)
    lengths = [0] * len(clips) if resolved.window.padded else [audio_samples(c) for c in clips]
    batches = batches_by_window(lengths, resolved, batch_size)
    mine = [b for k, b in enumerate(batches) if k % group.world == group.rank]
    with tqdm(total=sum(map(len, mine)), desc=f"transcribing {dataset.name}", unit="clip",
              disable=not (progress and group.is_main)) as bar:
        for k, batch in enumerate(mine):
            audios = [load_audio(clips[i]) for i in batch]
            result = transcribe(loaded, audios, batch_size=batch_size, progress=False, warmup=k == 0,
                                options=decoding, languages=[forced[i] for i in batch])
            texts.update(zip(batch, result.texts))
            detected.update(zip(batch, result.detected))
            attempts.update(zip(batch, result.attempts or [1] * len(batch)))
            again.update(zip(batch, result.padded_again or [False] * len(batch)))
            samples += sum(len(a) for a in audios)
            elapsed += result.seconds
            bar.update(len(batch))
    texts, detected = gather_by_index(group, texts), gather_by_index(group, detected)
    attempts, again = gather_by_index(group, attempts), gather_by_index(group, again)
    parts = group.all_gather_object((samples, elapsed))
    hypotheses = [texts[i] for i in range(len(clips))]
    references = [c.text for c in clips]
    counts = corpus_wer(references, hypotheses, language)
    per_utterance = utterance_errors(references, hypotheses, language)
    lid = [detected[i] for i in range(len(clips))]
    checked = [d for d in lid if d is not None] if language else []
    # no language forced: each clip was transcribed in the language detected for it
    decoded_in = dict(Counter(d[0] for d in lid if d).most_common()) if not (language and force) and any(lid) else None
    audio_s = sum(s for s, _ in parts) / SAMPLE_RATE
    seconds = max(e for _, e in parts)  # processes run side by side: the slowest sets the pace
    ratios = length_ratios(references, hypotheses, language)
    return DatasetResult(counts.wer, counts.n, counts.words, audio_s, audio_s / max(seconds, 1e-9),
                         counts.substitutions, counts.deletions, counts.insertions, counts.excluded,
                         language, metric(language), bool(language) and force,
                         sum(d[0] != language for d in checked) if checked else None,
                         len(checked) if checked else None, max(ratios, default=0.0),
                         sum(r > RUNAWAY for r in ratios), sum(attempts[i] > 1 for i in range(len(clips))),
                         sum(again[i] for i in range(len(clips))),
                         decoded_in,
                         [{"audio": str(c.path), "reference": c.text, "hypothesis": h, "errors": e, "words": w,
                           **({"detected_language": d[0], "language_probability": round(d[1], 4)} if d else {})}
                          for c, h, (e, w), d in zip(clips, hypotheses, per_utterance, lid)])
