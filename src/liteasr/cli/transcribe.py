"""`liteasr transcribe`: greedy transcription of audio files."""

from __future__ import annotations

import sys
from pathlib import Path

from . import common


def register(sub) -> None:
    p = sub.add_parser("transcribe", help="greedy transcription of audio files")
    common.model_args(p)
    p.add_argument("audio", nargs="+", metavar="AUDIO")
    common.attention_arg(p)
    common.language_args(p)
    p.set_defaults(func=run)


def run(args) -> None:
    from ..audio import Clip, load_audio, screen
    from ..transcribe import transcribe

    good, bad = screen([Clip(Path(p)) for p in args.audio], args.on_bad_audio)
    for path, reason in bad:
        print(f"liteasr: skipped {path}: {reason}", file=sys.stderr)
    audios = [load_audio(c.path) for c in good]
    loaded = common.load(args)
    result = transcribe(loaded, audios, batch_size=args.batch_size, warmup=False, language=args.language,
                        task=args.task)
    for path, text in zip([c.path for c in good], result.texts):
        print(f"{path}\t{text}" if len(args.audio) > 1 else text)
