"""Hugging Face datasets as DATA: the Hub (streamed), `save_to_disk` folders and parquet files.

    hf:ORG/NAME:SPLIT  or  hf:ORG/NAME:CONFIG:SPLIT   a Hub dataset, streamed (e.g.
                       hf:hf-audio/esb-datasets-test-only-sorted:librispeech:test.clean)
    FOLDER             a Dataset.save_to_disk folder (FOLDER:SPLIT for a DatasetDict)
    FILE.parquet, 'DIR/*.parquet', a folder of parquet files

Audio is never decoded by `datasets`: the column is cast to Audio(decode=False) and liteasr decodes
the stored bytes with soundfile + soxr, exactly as it reads files. Rows are filtered as the Open ASR
Leaderboard does: empty references and "ignore time segment in scoring" are dropped.
This module does not import audio.py (audio.py builds clips from what it returns).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from liteasr.errors import UserError

HUB_PREFIX = "hf:"
IGNORED_REFERENCE = "ignore time segment in scoring"  # TED-LIUM's non-speech segments in ESB


def is_hf_source(source) -> bool:
    text = str(source)
    if text.startswith(HUB_PREFIX) or text.endswith(".parquet"):
        return True
    path = Path(text)
    if path.is_dir():
        return _is_saved(path) or (not (path / "manifest.jsonl").is_file() and any(path.rglob("*.parquet")))
    folder, _, split = text.rpartition(":")
    return bool(folder and split) and (Path(folder) / "dataset_dict.json").is_file()


def usable(text: str | None) -> bool:
    """Leaderboard hygiene for references (no reference at all, as in calibration data, is kept)."""
    if text is None:
        return True
    text = str(text).strip()
    return bool(text) and text.lower() != IGNORED_REFERENCE


@dataclass(frozen=True)
class StoredRow:
    """One row of a local (memory-mapped) dataset; its audio is read only when needed."""
    table: object  # datasets.Dataset with only the audio column
    index: int
    column: str

    def audio_bytes(self) -> bytes:
        return _encoded(self.table[self.index][self.column], f"row {self.index}")


@dataclass(frozen=True)
class StreamedRow:
    """One row of a streamed Hub dataset: its encoded audio, kept (a stream cannot be revisited)."""
    data: bytes

    def audio_bytes(self) -> bytes:
        return self.data


def read_rows(source: str, audio_column: str = "audio", text_column: str = "text",
              language_column: str | None = None):
    """(name, [(label, text or None, language or None, row)]) of the usable rows of `source`, in dataset order.
    `language_column`: a column holding each row's language as the dataset writes it (a code, a name, a locale,
    or a class label such as VoxPopuli's), returned as written; None: no language."""
    table, name = _open(source)
    columns = list(table.column_names or [])
    wanted = [(audio_column, "audio")] + ([(language_column, "language")] if language_column is not None else [])
    for column, what in wanted:
        if columns and column not in columns:
            raise UserError(f"{source}: no {what} column {column!r} (columns: {', '.join(columns)}; "
                            f"choose one with --{what}-column)")
    table = _undecoded(table, audio_column)
    labels = _class_names(table, language_column)
    has_text = text_column in columns
    if not hasattr(table, "__len__"):  # streamed from the Hub (columns may be known only from the rows)
        rows = []
        for i, entry in enumerate(tqdm(table, desc=f"reading {source}", unit="row")):
            for column, what in wanted:
                if column not in entry:
                    raise UserError(f"{source}: no {what} column {column!r} (columns: {', '.join(entry)}; "
                                    f"choose one with --{what}-column)")
            text = entry.get(text_column)
            if usable(text):
                language = None if language_column is None else _language(entry[language_column], labels, source, i)
                rows.append((f"{source}#{i}", None if text is None else str(text), language,
                             StreamedRow(_encoded(entry[audio_column], f"{source} row {i}"))))
        return name, rows
    texts = table[text_column] if has_text else [None] * len(table)
    languages = table[language_column] if language_column is not None else [None] * len(table)
    audio = table.select_columns([audio_column])
    return name, [(f"{source}#{i}", None if t is None else str(t),
                   None if language_column is None else _language(lang, labels, source, i),
                   StoredRow(audio, i, audio_column)) for i, (t, lang) in enumerate(zip(texts, languages)) if usable(t)]


def _class_names(table, column: str | None) -> list[str] | None:
    """The names of a class-label language column (VoxPopuli stores languages as integers), else None."""
    feature = (getattr(table, "features", None) or {}).get(column) if column is not None else None
    return list(feature.names) if feature is not None and hasattr(feature, "names") else None


def _language(value, labels: list[str] | None, source: str, index: int) -> str:
    """One row's language as written (class labels named)."""
    if labels is not None and isinstance(value, int) and 0 <= value < len(labels):
        value = labels[value]
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{source} row {index}: the language column holds {value!r}, not a language "
                        "(a code such as it, a name such as Italian, or a locale such as pt-BR)")
    return value.strip()


def _datasets():
    try:
        import datasets
    except ImportError:
        raise UserError("Hugging Face datasets input needs the `datasets` package (pip install 'liteasr[datasets]')") \
            from None
    return datasets


def _is_saved(path: Path) -> bool:
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def _open(source: str):
    """(datasets.Dataset or IterableDataset, short name)."""
    datasets = _datasets()
    if source.startswith(HUB_PREFIX):
        parts = source[len(HUB_PREFIX):].split(":")
        if len(parts) not in (2, 3) or parts[0].count("/") != 1 or not all(parts):
            raise UserError(f"{source}: expected hf:ORG/NAME:SPLIT or hf:ORG/NAME:CONFIG:SPLIT")
        repo, config, split = parts[0], (parts[1] if len(parts) == 3 else None), parts[-1]
        try:
            table = datasets.load_dataset(repo, config, split=split, streaming=True)
        except Exception as exc:  # network, auth, unknown config or split: all end the same way for the user
            raise UserError(f"{source}: cannot open the Hub dataset ({type(exc).__name__}: {str(exc)[:200]})") from None
        return table, f"{config or repo.split('/')[-1]}_{split}"
    path = Path(source)
    if path.is_dir() and _is_saved(path) or ":" in source and not path.exists():
        folder, split = (source, None) if path.is_dir() else source.rsplit(":", 1)
        try:
            table = datasets.load_from_disk(folder)
        except (OSError, ValueError) as exc:
            raise UserError(f"{folder}: cannot load the saved dataset ({exc})") from None
        if isinstance(table, datasets.DatasetDict):
            if split not in table:
                raise UserError(f"{folder} holds splits {', '.join(table)}: name one as {folder}:SPLIT")
            return table[split], f"{Path(folder).name}_{split}"
        return table, Path(folder).name
    files = sorted(str(p) for p in path.rglob("*.parquet")) if path.is_dir() else sorted(glob.glob(source))
    if not files:
        raise UserError(f"{source}: no such parquet file")
    try:
        table = datasets.Dataset.from_parquet(files)
    except Exception as exc:  # pyarrow reports a bad file with many exception types
        raise UserError(f"{source}: cannot read parquet ({type(exc).__name__}: {str(exc)[:200]})") from None
    return table, (path.stem if path.is_file() else (path if path.is_dir() else path.parent).name)


def _undecoded(table, column: str):
    """The audio column as stored bytes: liteasr decodes audio itself."""
    datasets = _datasets()
    features = getattr(table, "features", None) or {}
    if isinstance(features.get(column), datasets.Audio):
        return table.cast_column(column, datasets.Audio(decode=False))
    return table


def _encoded(value, where: str) -> bytes:
    """Encoded audio of a cell: {'bytes': ..., 'path': ...} as Audio(decode=False) stores it."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path") and Path(value["path"]).is_file():
            return Path(value["path"]).read_bytes()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise UserError(f"{where}: audio cell holds neither audio bytes nor a readable file")
