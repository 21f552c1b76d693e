"""What every command shares: device/dtype parsing, model loading, clip selection, common options."""

from __future__ import annotations

import argparse
import json
import sys

from liteasr.errors import UserError

# damage.DAMAGE_MODELS / DEFAULT_DAMAGE, spelled out so that parsing arguments does not import torch
DAMAGE_MODELS = ("encoder", "decoder", "sensitivity", "normalized", "variance")
DEFAULT_DAMAGE = "encoder"
WINDOW_END_THRESHOLD = 0.3  # decoding.transcribe.WINDOW_END_THRESHOLD, for the same reason


def device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda requested but no CUDA device is available")
    return name


def dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def load(args, spec=None):
    from liteasr import runtime

    return runtime.load(spec or args.model, device=device(args.device), dtype=dtype(args.dtype),
                        attention=getattr(args, "attention", "auto"))


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def output_file(text: str) -> str:
    """An output file option, checked when the command starts rather than when its work is done."""
    from liteasr.atomic import check_writable

    try:
        check_writable(text, overwrite=True, file=True)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def clips(args, source, n: int | None = None, with_text: bool = False):
    """Clips of DATA (one source or several), N of them chosen by --seed, every file checked before
    any model runs."""
    from liteasr.data.audio import Dataset, draw, read_sources, screen, transcribed

    sets = source if isinstance(source, list) and source and isinstance(source[0], Dataset) \
        else read_sources(source, *columns(args))
    if with_text:
        for ds in sets:
            ds.clips = transcribed(ds)
    good, bad = screen(draw(sets, n, getattr(args, "seed", 0)), args.on_bad_audio)
    for path, reason in bad:
        print(f"liteasr: skipped {path}: {reason}", file=sys.stderr)
    return good, bad


def columns(args) -> tuple[str, str, str | None]:
    """(audio column, text column, language column) for Hugging Face datasets."""
    return (getattr(args, "audio_column", "audio"), getattr(args, "text_column", "text"),
            getattr(args, "language_column", None))


def write_json(path: str, data) -> None:
    from liteasr.atomic import atomic_file
    from liteasr.distributed import current

    if not current().is_main:  # under torchrun only rank 0 writes
        return
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def model_args(p, model=True, files=True):
    """`files`: the command reads audio files in batches (--batch-size, --on-bad-audio)."""
    if model:
        p.add_argument("model", metavar="MODEL",
                       help="HF dir, CTranslate2 dir, Hub id or short name (tiny.en, base, large-v3, turbo, ...), "
                            "a `liteasr export` dir (ONNX Runtime) or ctranslate2:SPEC[:COMPUTE_TYPE]")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="weights and activations (default float32; statistics are always float64)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    if files:
        p.add_argument("--batch-size", type=positive(int), default=8, help="clips per batch (default 8)")
        p.add_argument("--on-bad-audio", choices=["error", "skip"], default="error",
                       help="unreadable, empty or NaN audio: stop with its name (default) or skip and list it")


def calibration_args(p, required, overwrite=True):
    p.add_argument("--calibration", metavar="DATA", nargs="+", required=required,
                   help="folders of audio files, JSONL manifests or Hugging Face datasets; clips are drawn from all of them; "
                        "SOURCE@LANG states a source's language (recordings/@pl)")
    p.add_argument("--calibration-samples", type=positive(int), default=64, metavar="N",
                   help="clips to calibrate on, chosen by --seed (default 64)")
    p.add_argument("--seed", type=int, default=0, help="chooses the clips (and healing's draws; default 0)")
    p.add_argument("--packing", choices=["pad", "pack", "mix"], default="mix",
                   help="calibration windows: each clip padded to 30 s (as inference sees short clips), "
                        "clips packed into full 30 s windows, or a mix of both (default, best measured)")
    if overwrite:
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    column_args(p)


def shard_windows_arg(p):
    p.add_argument("--shard-windows", type=positive(int), default=16, metavar="N",
                   help="calibration windows per shard (default 16): shards' sums are added in order, so any "
                        "number of torchrun processes gives identical statistics for the same N")


def column_args(p):
    p.add_argument("--audio-column", default="audio", metavar="NAME",
                   help="Hugging Face datasets (hf:ORG/NAME[:CONFIG]:SPLIT, save_to_disk folders, parquet): "
                        "the audio column (default audio)")
    p.add_argument("--text-column", default="text", metavar="NAME",
                   help="Hugging Face datasets: the reference text column (default text)")
    p.add_argument("--language-column", default=None, metavar="NAME",
                   help="Hugging Face datasets: the column that holds each row's language, as a code (it), a name "
                        "(Italian) or a locale (pt-BR), as manifests' `language` (default: none; FLEURS: language, "
                        "Common Voice: locale)")


def attention_arg(p):
    p.add_argument("--attention", choices=["auto", "reduced", "standard"], default="auto",
                   help="self-attention of lite models: as recorded in the checkpoint (auto) or forced")


def language_args(p):
    p.add_argument("--language", metavar="LANG",
                   help="spoken language (code or English name) for multilingual models; default: detected "
                        "(eval: each manifest's `language`, else detected)")
    p.add_argument("--task", choices=["transcribe", "translate"], default=None,
                   help="multilingual models: transcribe (default) or translate into English")


def window_arg(p):
    p.add_argument("--window", metavar="auto|S",
                   help="encoder window of clips up to 30 s: the model's own by default (recorded by `compress "
                        "--window`; Whisper's 30 s padding without one; `auto` insists on it), or a floor in seconds "
                        "(30: the padded window; shorter on a model not healed for it: expect loops)")


def search_args(p, greedy: bool = False):
    """faster-whisper's decoding options under its names. Defaults: faster-whisper's (transcribe, serve), or
    greedy without fallback (`greedy`: eval, the Open ASR Leaderboard's convention)."""
    g = p.add_argument_group("decoding (faster-whisper's options and names)")
    g.add_argument("--beam-size", default=1 if greedy else 5, metavar="N",
                   help=f"beams at temperature 0; 1 = greedy (default {1 if greedy else 5})")
    g.add_argument("--best-of", default=5, metavar="N",
                   help="samples per clip at a temperature above 0, the most likely kept (default 5)")
    g.add_argument("--temperature", default="0" if greedy else "0,0.2,0.4,0.6,0.8,1.0", metavar="T[,T...]",
                   help="temperatures tried in order while a guard trips; one value turns the fallback off "
                        f"(default {'0' if greedy else '0,0.2,0.4,0.6,0.8,1.0'})")
    off = "off" if greedy else None
    g.add_argument("--compression-ratio-threshold", default=off or 2.4, metavar="R",
                   help=f"fall back when the text's gzip compression ratio is above R: a loop (default {off or 2.4}; "
                        "off disables)")
    g.add_argument("--log-prob-threshold", default=off or -1.0, metavar="L",
                   help=f"fall back when the average token log-probability is below L (default {off or -1.0}; "
                        "off disables)")
    g.add_argument("--no-speech-threshold", default=off or 0.6, metavar="P",
                   help=f"a clip whose no-speech probability is above P and whose tokens are unlikely is silence "
                        f"(default {off or 0.6}; off disables)")
    g.add_argument("--window-end-threshold", default=WINDOW_END_THRESHOLD, metavar="P",
                   help="short windows: a clip whose end-of-text is less likely than P, missing (the token budget "
                        "ran out) or after looping text is decoded again on the padded 30 s window (default "
                        f"{WINDOW_END_THRESHOLD}; off disables)")
    g.add_argument("--condition-on-previous-text", action=argparse.BooleanOptionalAction, default=not greedy,
                   help=f"long-form: each 30 s window continues the previous one's text (default {not greedy})")


def search_options(args) -> dict:
    """search_args' values as DecodingOptions fields; a value that is not a number is a one-line error
    (the ranges are checked by DecodingOptions' own check)."""

    def number(flag: str, value, kind=float, off: bool = False):
        if off and str(value).lower() in ("off", "none"):
            return None
        try:
            return kind(value)
        except ValueError:
            raise UserError(f"--{flag} must be {'a whole number' if kind is int else 'a number'}"
                            f"{' or off' if off else ''}, got {value!r}") from None

    try:
        temperature = tuple(float(t) for t in str(args.temperature).split(","))
    except ValueError:
        raise UserError(f"--temperature must be numbers separated by commas, got {args.temperature!r}") from None
    return {"beam_size": number("beam-size", args.beam_size, int), "best_of": number("best-of", args.best_of, int),
            "temperature": temperature, "condition_on_previous_text": args.condition_on_previous_text,
            **{name.replace("-", "_"): number(name, getattr(args, name.replace("-", "_")), off=True)
               for name in ("compression-ratio-threshold", "log-prob-threshold", "no-speech-threshold",
                            "window-end-threshold")}}


def window_option(value: str | None):
    """--window as DecodingOptions.window: None, 'auto' or seconds (checked: a one-line error)."""
    if value is None or value == "auto":
        return value
    try:
        seconds = float(value)
    except ValueError:
        raise UserError(f"--window must be auto or a number of seconds, got {value!r}") from None
    if not 0 < seconds <= 30:
        raise UserError(f"--window must be within (0, 30] seconds, got {value}")
    return seconds
