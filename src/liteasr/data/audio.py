"""Audio in: folders of audio files, JSONL manifests or Hugging Face datasets (data/hf.py), read with
soundfile, resampled with soxr."""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from liteasr.errors import UserError

SAMPLE_RATE = 16_000
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".w64", ".rf64", ".caf"}


@dataclass(frozen=True)
class Clip:
    path: Path  # the file, or a name for a dataset row (`row` then holds the audio)
    text: str | None = None
    row: object = field(default=None, compare=False, repr=False)  # has .audio_bytes(): a Hugging Face row
    language: str | None = None  # ISO 639-1 code of the spoken language, when the manifest says
    # who speaks, when the manifest says: `MANIFEST:ID`, its `speaker` scoped by the manifest (two sets may
    # both have a speaker "1")
    speaker: str | None = None

    def open(self):
        """Something soundfile reads: the file, or the row's stored bytes."""
        return str(self.path) if self.row is None else io.BytesIO(self.row.audio_bytes())

    def encoded(self) -> bytes:
        """The stored audio, still encoded."""
        return self.path.read_bytes() if self.row is None else self.row.audio_bytes()


@dataclass
class Dataset:
    name: str
    clips: list[Clip]


LANGUAGE_MARK = "@"  # `SOURCE@LANG`: every clip of SOURCE is in LANG


def read_dataset(source: str | Path, audio_column: str = "audio", text_column: str = "text",
                 language_column: str | None = None) -> Dataset:
    """A folder of audio files (recursive, sorted), a JSONL manifest with `audio`, `text` and optionally
    `language` (ISO 639-1, a name or a locale), or a Hugging Face dataset (`hf:ORG/NAME[:CONFIG]:SPLIT`, a
    save_to_disk folder, parquet files; `language_column` names the column that holds each row's language).
    Languages are kept as Whisper's codes, so that `English` and `en` are one language.
    `SOURCE@LANG` states the language of a source that states none itself (a folder of audio files, a
    Hugging Face dataset with one configuration per language such as Multilingual LibriSpeech); a clip
    that states another language is an error."""
    source, stated = source_language(source)
    dataset = _read_dataset(source, audio_column, text_column, language_column)
    if stated is not None:
        for clip in dataset.clips:
            if clip.language not in (None, stated):
                raise UserError(f"{clip.path}: in {clip.language}, but {source}{LANGUAGE_MARK}{stated} says {stated}")
        dataset.clips = [replace(c, language=stated) for c in dataset.clips]
    return dataset


def source_language(source: str | Path) -> tuple[str | Path, str | None]:
    """(SOURCE, Whisper's language code) from `SOURCE@LANG` (`recordings/@pl`, `data.parquet@Polish`,
    `hf:ORG/NAME:polish:test@pl-PL`); (source, None) when it names no language. A path that exists as
    written is never split."""
    from liteasr.models.generation import is_language, language_code

    text = str(source)
    head, mark, tail = text.rpartition(LANGUAGE_MARK)
    if not mark or not head or not tail or "/" in tail or Path(text).exists():
        return source, None
    code = language_code(tail)
    if not is_language(code):
        raise UserError(f"{text}: {tail!r} after {LANGUAGE_MARK!r} is not a language Whisper knows "
                        "(a code such as pl, a name such as Polish, or a locale such as pl-PL)")
    return (head if isinstance(source, str) else Path(head)), code


def _read_dataset(source: str | Path, audio_column: str, text_column: str,
                  language_column: str | None) -> Dataset:
    from liteasr.data import hf
    from liteasr.models.generation import language_code  # Whisper's language list: `English`, `en-US` -> `en`

    if hf.is_hf_source(source):
        name, rows = hf.read_rows(str(source), audio_column, text_column, language_column)
        clips = [Clip(Path(label), text, row, language=language and language_code(language))
                 for label, text, language, row in rows]
        if not clips:
            raise UserError(f"{source}: dataset has no usable rows")
        return Dataset(name, clips)
    source = Path(source)
    if source.is_dir():
        manifest = source / "manifest.jsonl"
        if manifest.is_file():
            return _read_dataset(manifest, audio_column, text_column, language_column)
        return Dataset(source.name, [Clip(p) for p in audio_files([source])])
    if not source.is_file():
        raise UserError(f"{source}: no such file or folder")
    if source.suffix.lower() in AUDIO_EXTENSIONS:
        return Dataset(source.stem, [Clip(source)])
    clips, seen = [], set()
    for number, line in enumerate(source.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{source}:{number}: not valid JSON") from None
        if not isinstance(entry, dict) or "audio" not in entry:
            raise UserError(f"{source}:{number}: entry has no \"audio\" field")
        path = (source.parent / entry["audio"]).resolve()
        if not path.is_file():
            raise UserError(f"{source}:{number}: audio file {entry['audio']} does not exist")
        if path in seen:
            raise UserError(f"{source}:{number}: duplicate entry for {entry['audio']}")
        seen.add(path)
        text, language, speaker = entry.get("text"), entry.get("language"), entry.get("speaker")
        if language is not None and (not isinstance(language, str) or not language.strip()):
            raise UserError(f"{source}:{number}: \"language\" must be a language code such as \"en\"")
        if speaker is not None and (not isinstance(speaker, (str, int)) or not str(speaker).strip()):
            raise UserError(f"{source}:{number}: \"speaker\" must be a name or a number")
        clips.append(Clip(path, None if text is None else str(text), language=language and language_code(language),
                          speaker=None if speaker is None else f"{source.resolve()}:{str(speaker).strip()}"))
    if not clips:
        raise UserError(f"{source}: manifest has no entries")
    return Dataset(source.parent.name, clips)


def transcribed(dataset: Dataset) -> list[Clip]:
    """The clips with a reference text; a dataset with none is an error (evaluation needs transcripts)."""
    clips = [c for c in dataset.clips if c.text is not None]
    if dataset.clips and not clips:
        raise UserError(f"{dataset.name}: no clip has a reference text (a manifest's \"text\", or --text-column): "
                        "evaluation needs transcripts")
    return clips


def audio_files(paths: list[str | Path]) -> list[Path]:
    """Files as given, folders as the audio files in them (recursive, sorted; hidden files and folders left out,
    such as macOS's `._clip.wav` resource forks); a folder without any is an error."""
    files = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not found:
            raise UserError(f"{path}: folder contains no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})")
        files += found
    return files


def sample(clips: list[Clip], n: int | None, seed: int = 0) -> list[Clip]:
    """N clips chosen deterministically by `seed`, kept in their original order."""
    if n is None or n >= len(clips):
        return list(clips)
    if n <= 0:
        raise UserError(f"number of samples must be positive, got {n}")
    keep = sorted(random.Random(seed).sample(range(len(clips)), n))
    return [clips[i] for i in keep]


def read_sources(sources: str | Path | list, audio_column: str = "audio", text_column: str = "text",
                 language_column: str | None = None) -> list[Dataset]:
    """One Dataset per source (see read_dataset); a file listed twice is an error."""
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
    if not sources:
        raise UserError("no data sources given")
    sets = [read_dataset(s, audio_column, text_column, language_column) for s in sources]
    seen: dict[Path, str] = {}
    for source, ds in zip(sources, sets):
        for clip in ds.clips:
            if clip.path in seen:
                raise UserError(f"{clip.path} is in both {seen[clip.path]} and {source}")
            seen[clip.path] = str(source)
    return sets


def draw(sets: list[Dataset], n: int | None, seed: int = 0) -> list[Clip]:
    """N clips drawn from all sets, as evenly as their sizes allow (a source with fewer clips than
    its share gives all it has and the rest is spread over the others), each set sampled by `seed`."""
    sizes = [len(ds.clips) for ds in sets]
    if n is None or n >= sum(sizes):
        return [c for ds in sets for c in ds.clips]
    if n <= 0:
        raise UserError(f"number of samples must be positive, got {n}")
    shares = [0] * len(sets)
    left = n
    while left:
        open_ = [i for i, size in enumerate(sizes) if shares[i] < size]
        for i in open_[:left] if left < len(open_) else open_:
            shares[i] += 1
        left = n - sum(shares)
    return [c for ds, k in zip(sets, shares) for c in sample(ds.clips, k, seed)]


def load_audio(source: str | Path | Clip) -> np.ndarray:
    """Mono float32 at 16 kHz, from a file or a clip (file or dataset row)."""
    clip = source if isinstance(source, Clip) else Clip(Path(source))
    return decode_audio(clip.open(), str(clip.path))


def audio_samples(clip: Clip) -> int:
    """The clip's length in samples at 16 kHz, from its header (no decoding); 0 when it cannot be read (then
    load_audio says why)."""
    try:
        info = sf.info(clip.open())
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        return 0
    return round(info.frames * SAMPLE_RATE / info.samplerate)


def decode_audio(source: str | BinaryIO, name: str) -> np.ndarray:
    """Mono float32 at 16 kHz from a path or an open binary file (an upload, a dataset row's bytes);
    errors call it `name`."""
    if isinstance(source, str) and not Path(source).exists():  # libsndfile would only say "System error."
        raise UserError(f"{name}: no such file")
    try:
        data, rate = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        # libsndfile's own reason; its full message would also print the file object
        raise UserError(f"{name}: cannot read audio ({getattr(exc, 'error_string', None) or exc})") from None
    if data.shape[0] == 0:
        raise UserError(f"{name}: audio is empty")
    if not np.isfinite(data).all():
        raise UserError(f"{name}: audio contains NaN or infinite samples")
    mono = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def screen(clips: list[Clip], on_bad: str = "error") -> tuple[list[Clip], list[tuple[Path, str]]]:
    """Read every clip once, before any model runs. `error`: stop at the first bad file with its
    reason; `skip`: drop bad files and return them with their reasons for the summary."""
    good, bad = [], []
    for clip in clips:
        try:
            load_audio(clip)
            good.append(clip)
        except UserError as exc:
            if on_bad == "error":
                raise UserError(f"{exc} (use --on-bad-audio skip to leave such files out)") from None
            bad.append((clip.path, str(exc).split(": ", 1)[-1]))
    if not good:
        raise UserError("no usable audio left after skipping bad files")
    return good, bad


def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Speed perturbation (Ko et al., 2015): the clip played `factor` times faster, so both tempo and
    pitch (formants, as of a smaller or larger vocal tract) move; a label-free stand-in for new voices."""
    if factor == 1.0:
        return audio
    if not 0.5 <= factor <= 2.0:
        raise UserError(f"speed factor must be between 0.5 and 2.0, got {factor}")
    return soxr.resample(audio, SAMPLE_RATE * factor, SAMPLE_RATE, quality="HQ").astype(np.float32)


def windows(audio: np.ndarray, seconds: int = 30) -> list[np.ndarray]:
    """Split into consecutive windows of at most `seconds` (calibration sees every part of a long clip)."""
    size = seconds * SAMPLE_RATE
    return [audio[i : i + size] for i in range(0, max(len(audio), 1), size)]


def audio_hash(source: str | Path | Clip) -> str:
    """Of the stored (encoded) audio, file or dataset row."""
    clip = source if isinstance(source, Clip) else Clip(Path(source))
    return hashlib.sha256(clip.encoded()).hexdigest()
