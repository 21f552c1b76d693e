"""Word timestamps on compressed models: how far compression moves each word, and what timing words costs.

    python benchmarks/words.py [--samples 100] [--paper DIR] [--work runs/bench]
        [--json benchmarks/words.json] [--markdown FILE]

There is no hand-aligned reference among the shared sets, so each model's words are compared with dense
tiny.en's on the same clips, beside a yardstick: dense base, another uncompressed Whisper, against the same
reference (how far two good models disagree). Models: dense tiny.en; `compress`'s default at 0.7 (`make
bench`'s model, benchmarks/_common.default_compression, built under --work when missing); the paper's rule
when --paper names it (`liteasr compress tiny.en --calibration librispeech_calib --threshold 0.99:0.999`);
dense base. Clips: --samples of librispeech_other (seed 1), speakers none of the calibrations hold. Every
model decodes as `transcribe --word-timestamps` does (faster-whisper's defaults, timestamps, words), PyTorch
fp32. Words are matched by their spelling (lower case, punctuation dropped) along the two transcripts
(difflib); per model: the share of the reference's words matched, the median, 90th percentile and mean of
|start - reference start| and |end - reference end| in seconds over matched words, with a bootstrap 95%
interval over clips for the mean, and the decoding time with and without word timestamps (the same clips,
interleaved per clip: the ratio is what words cost).
"""

import argparse
import difflib
import re
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from _common import DEFAULT_WORK, default_compression, emit, speech_or_exit, write_json

from liteasr import runtime
from liteasr.data.audio import draw, load_audio, read_dataset
from liteasr.decoding.transcribe import DecodingOptions, transcribe_segments

WORDS = DecodingOptions.like_faster_whisper(word_timestamps=True)
PLAIN = DecodingOptions.like_faster_whisper()


def spelling(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def clip_gaps(words, reference) -> tuple[list[float], list[float], int]:
    """|start| and |end| differences of the words matched by spelling, and how many matched."""
    a, b = [spelling(w.word) for w in words], [spelling(w.word) for w in reference]
    starts, ends, matched = [], [], 0
    for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            mine, theirs = words[block.a + k], reference[block.b + k]
            starts.append(abs(mine.start - theirs.start))
            ends.append(abs(mine.end - theirs.end))
        matched += block.size
    return starts, ends, matched


def bootstrap_mean(per_clip: list[list[float]], draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the pooled mean, resampling clips."""
    rng = np.random.default_rng(seed)
    sums, counts = np.array([sum(c) for c in per_clip]), np.array([len(c) for c in per_clip])
    picks = rng.integers(0, len(per_clip), size=(draws, len(per_clip)))
    means = sums[picks].sum(1) / np.maximum(counts[picks].sum(1), 1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def decode(model, audios, name: str) -> tuple[list[list], float, float]:
    """Each clip's words, and seconds with and without word timestamps (interleaved per clip)."""
    words, with_words, without = [], 0.0, 0.0
    transcribe_segments(model, audios[0], WORDS)  # warm-up
    for audio in tqdm(audios, desc=name, unit="clip"):
        t0 = time.perf_counter()
        _, segments, _, _ = transcribe_segments(model, audio, WORDS)
        t1 = time.perf_counter()
        transcribe_segments(model, audio, PLAIN)
        without += time.perf_counter() - t1
        with_words += t1 - t0
        words.append([w for s in segments for w in s.words])
    return words, with_words, without


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--paper", type=Path, help="the paper's rule on tiny.en (a liteasr checkpoint)")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)
    p.add_argument("--json", default="benchmarks/words.json")
    p.add_argument("--markdown")
    args = p.parse_args()
    speech = speech_or_exit()
    clips = draw([read_dataset(speech / "librispeech_other")], args.samples, seed=1)
    audios = [load_audio(c.path) for c in clips]
    seconds = sum(len(a) for a in audios) / 16000
    models = {"dense tiny.en": "tiny.en", "0.7 (default)": str(default_compression(args.work, 0.7))}
    if args.paper:
        if not (args.paper / "config.json").is_file():
            sys.exit(f"words.py: {args.paper} is not a checkpoint")
        models["paper's rule"] = str(args.paper)
    models["dense base (yardstick)"] = "base"
    found = {}
    for name, spec in models.items():
        found[name] = decode(runtime.load(spec), audios, name)
    reference = found["dense tiny.en"][0]
    rows, lines = {}, ["| model | words matched | start: median / p90 / mean [95% CI] (s) | end: median / p90 / mean "
                       "[95% CI] (s) | RTFx plain | RTFx with words | words cost |",
                       "|---|---:|---|---|---:|---:|---:|"]
    for name, (words, with_words, without) in found.items():
        starts, ends, matched = [], [], 0
        for mine, theirs in zip(words, reference):
            s, e, m = clip_gaps(mine, theirs)
            starts.append(s)
            ends.append(e)
            matched += m
        flat_s, flat_e = np.concatenate(starts), np.concatenate(ends)
        total = sum(len(r) for r in reference)
        row = {"spec": models[name], "words": sum(len(w) for w in words), "reference_words": total,
               "matched": matched, "seconds_with_words": with_words, "seconds_plain": without,
               "audio_seconds": seconds}
        for key, flat, per_clip in (("start", flat_s, starts), ("end", flat_e, ends)):
            row[key] = {"median": float(np.median(flat)), "p90": float(np.percentile(flat, 90)),
                        "mean": float(flat.mean()), "mean_ci": bootstrap_mean(per_clip),
                        "within_0.1": float(np.mean(flat <= 0.1))}
        rows[name] = row

        def cell(d):
            return f"{d['median']:.2f} / {d['p90']:.2f} / {d['mean']:.3f} [{d['mean_ci'][0]:.3f}, {d['mean_ci'][1]:.3f}]"

        lines.append(f"| {name} | {matched / total:.1%} | {cell(row['start'])} | {cell(row['end'])} | "
                     f"{seconds / without:.1f} | {seconds / with_words:.1f} | {with_words / without:.2f}x |")
    emit(lines, args.markdown)
    write_json(args.json, {"command": " ".join(["python", *sys.argv]), "samples": args.samples, "seed": 1,
                           "set": "librispeech_other", "decoding": "like_faster_whisper(word_timestamps=True)",
                           "reference": "dense tiny.en", "models": rows})


if __name__ == "__main__":
    main()
