"""`liteasr transcribe`: transcription of audio files, decoded as faster-whisper decodes by default."""

from __future__ import annotations

import json
import sys

from liteasr.cli import common


def register(sub) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files (beam search with temperature fallback, as faster-whisper)")
    common.model_args(p)
    p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files, or folders of them (recursive)")
    common.attention_arg(p)
    common.language_args(p)
    common.window_arg(p)
    common.search_args(p)
    p.add_argument("--prompt", metavar="TEXT", help="text the transcript continues from (names, spelling, style)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per file: audio, text, language, the detected language with its "
                        "probability (multilingual models), and for clips up to 30 s the search's avg_logprob, "
                        "compression_ratio, no_speech_prob and temperature")
    p.set_defaults(func=run)


def run(args) -> None:
    from liteasr.data.audio import Clip, audio_files, load_audio, screen
    from liteasr.decoding.transcribe import language_options, transcribe

    options = language_options(args.language, args.task, args.prompt, common.window_option(args.window),
                               **common.search_options(args))
    files = audio_files(args.audio)
    good, bad = screen([Clip(p) for p in files], args.on_bad_audio)
    for path, reason in bad:
        print(f"liteasr: skipped {path}: {reason}", file=sys.stderr)
    audios = [load_audio(c.path) for c in good]
    loaded = common.load(args)
    result = transcribe(loaded, audios, batch_size=args.batch_size, warmup=False, options=options)
    for path, text, language, detected, hyp in zip([c.path for c in good], result.texts, result.languages,
                                                   result.detected, result.hypotheses):
        if args.json:
            scores = {} if hyp is None else {  # clips up to 30 s: what the search kept
                "avg_logprob": round(hyp.avg_logprob, 4), "compression_ratio": round(hyp.compression_ratio, 3),
                "no_speech_prob": round(hyp.no_speech_prob, 4), "temperature": hyp.temperature}
            print(json.dumps({"audio": str(path), "text": text, "language": language,
                              "detected_language": detected and detected[0],
                              "language_probability": detected and round(detected[1], 4), **scores},
                             ensure_ascii=False))
            continue
        if detected and args.language is None:
            print(f"liteasr: {path}: detected language {detected[0]} (probability {detected[1]:.2f})",
                  file=sys.stderr)
        print(f"{path}\t{text}" if len(files) > 1 else text)
