"""`liteasr transcribe`: transcription of audio files, decoded as faster-whisper decodes by default."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
    p.add_argument("--word-timestamps", action="store_true",
                   help="each word with its start and end in seconds (one line each: start, end, word; with --json, "
                        "the segments with their words and each word's probability)")
    p.add_argument("--subtitles", choices=["srt", "vtt"],
                   help="also write each file's subtitles (SubRip or WebVTT; decoded with timestamps) to --output-dir "
                        "as NAME.srt / NAME.vtt")
    p.add_argument("--output-dir", metavar="DIR", help="where --subtitles go (default: here)")
    p.add_argument("--overwrite", action="store_true", help="replace subtitle files that exist")
    p.set_defaults(func=run)


# Files decoded (and held in memory) at a time: a folder of thousands of long recordings is never loaded whole,
# and each group's lines are printed before the next one starts; 64 keep batches of 8 full
FILES_AT_A_TIME = 64


def run(args) -> None:
    from tqdm.auto import tqdm

    from liteasr.data.audio import Clip, audio_files, screen
    from liteasr.decoding.transcribe import check_options, language_options, transcribe, transcribe_segments

    options = language_options(args.language, args.task, args.prompt, common.window_option(args.window),
                               word_timestamps=args.word_timestamps, **common.search_options(args))
    files = audio_files(args.audio)
    good, bad = screen([Clip(p) for p in files], args.on_bad_audio)
    for path, reason in bad:
        print(f"liteasr: skipped {path}: {reason}", file=sys.stderr)
    paths = [c.path for c in good]
    subtitles = _subtitle_files(args, paths)  # before the model loads: an existing file fails at once
    loaded = common.load(args)
    options = check_options(loaded, options)  # a language or task the model cannot take fails before any output
    with tqdm(total=len(paths), desc="transcribing", unit="file") as bar:
        for start in range(0, len(paths), FILES_AT_A_TIME):
            group = paths[start : start + FILES_AT_A_TIME]
            if args.word_timestamps or args.subtitles:
                out = transcribe_segments(loaded, group, options, batch_size=args.batch_size)
                for path, (text, segments, language, detected) in zip(group, out):
                    line = (_words(args, path, text, segments, language, detected, several=len(files) > 1)
                            if args.word_timestamps else _line(args, path, text, language, detected, None, len(files) > 1))
                    bar.write(line, file=sys.stdout)
                    if args.subtitles:
                        _write_subtitles(args.subtitles, segments, subtitles[path])
                        bar.write(f"liteasr: wrote {subtitles[path]}", file=sys.stderr)
                    _say_detected(args, bar, path, detected)
                bar.update(len(group))
                continue
            result = transcribe(loaded, group, batch_size=args.batch_size, progress=False, warmup=False,
                                options=options)
            for path, text, language, detected, hyp in zip(group, result.texts, result.languages, result.detected,
                                                           result.hypotheses):
                bar.write(_line(args, path, text, language, detected, hyp, several=len(files) > 1), file=sys.stdout)
                _say_detected(args, bar, path, detected)
            bar.update(len(group))


def _subtitle_files(args, paths: list) -> dict:
    """Each audio file's subtitle file (--subtitles), checked before any work: none may exist (unless
    --overwrite), and no two files may share a name."""
    from liteasr.atomic import check_writable
    from liteasr.errors import UserError

    if not args.subtitles:
        if args.output_dir or args.overwrite:
            raise UserError(f"{'--output-dir' if args.output_dir else '--overwrite'} is for --subtitles files: "
                            "add --subtitles srt or vtt")
        return {}
    folder = Path(args.output_dir or ".")
    targets = {path: folder / f"{Path(path).stem}.{args.subtitles}" for path in paths}
    seen: dict = {}
    for path, target in targets.items():
        if target in seen:
            raise UserError(f"{seen[target]} and {path} would both write {target}: transcribe them apart")
        seen[target] = path
        check_writable(target, args.overwrite, file=True)
    return targets


def _write_subtitles(kind: str, segments: list, target: Path) -> None:
    from liteasr.atomic import atomic_file
    from liteasr.decoding.subtitles import SUBTITLES

    with atomic_file(target) as tmp:
        tmp.write_text(SUBTITLES[kind](segments), encoding="utf-8")


def _say_detected(args, bar, path, detected) -> None:
    if detected and args.language is None and not args.json:
        bar.write(f"liteasr: {path}: detected language {detected[0]} (probability {detected[1]:.2f})", file=sys.stderr)


def _line(args, path, text, language, detected, hyp, several: bool) -> str:
    """One file's output: its text (after its path when there are several files), or its JSON object."""
    if not args.json:
        return f"{path}\t{text}" if several else text
    scores = {} if hyp is None else {  # clips up to 30 s: what the search kept
        "avg_logprob": round(hyp.avg_logprob, 4), "compression_ratio": round(hyp.compression_ratio, 3),
        "no_speech_prob": round(hyp.no_speech_prob, 4), "temperature": hyp.temperature}
    return json.dumps({**_about(path, text, language, detected), **scores}, ensure_ascii=False)


def _about(path, text, language, detected) -> dict:
    """What every JSON line of a file starts with: the file, its text and its languages."""
    return {"audio": str(path), "text": text, "language": language, "detected_language": detected and detected[0],
            "language_probability": detected and round(detected[1], 4)}


def _words(args, path, text, segments, language, detected, several: bool) -> str:
    """One file's words: `start<TAB>end<TAB>word` lines (after its path when there are several files), or its
    JSON object with segments and their words."""
    if args.json:
        return json.dumps({
            **_about(path, text, language, detected),
            "segments": [{"start": s.start, "end": s.end, "text": s.text,
                          "words": [{"word": w.word.strip(), "start": w.start, "end": w.end,
                                     "probability": round(w.probability, 4)} for w in s.words or []]}
                         for s in segments]}, ensure_ascii=False)
    lines = [f"{w.start:.2f}\t{w.end:.2f}\t{w.word.strip()}" for s in segments for w in s.words or []]
    return "\n".join(f"{path}\t{line}" if several else line for line in lines)
