"""Word timestamps on compressed models: how far compression moves each word, and what timing words costs.

    python benchmarks/words.py [--samples 100] [--paper DIR] [--work runs/bench]
        [--json benchmarks/words.json] [--markdown FILE]
    python benchmarks/words.py --base-lite DIR [--base-samples 40] --json benchmarks/words_base.json

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

With --base-lite (a compressed multilingual base, e.g. `liteasr compress base --calibration librispeech_calib@en
SPEECHOCEAN_HALF@en NEMO_PL_CALIB_HALF`, benchmarks/_common.multilingual_splits' halves): its words against dense
base's, each set decoded in its language, on --base-samples clips (seed 1) of English (librispeech_other),
Polish (nemo_pl's two speakers the calibration lacks) and Italian (emovo_it, a language it did not hear).
"""

import argparse
import difflib
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from _common import DEFAULT_WORK, default_compression, emit, multilingual_splits, speech_or_exit, write_json

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


def decode(model, audios, name: str, options: DecodingOptions = WORDS, timed: bool = True
           ) -> tuple[list[list], float, float]:
    """Each clip's words, and (`timed`) seconds with and without word timestamps, interleaved per clip."""
    words, with_words, without = [], 0.0, 0.0
    if timed:
        transcribe_segments(model, audios[0], options)  # warm-up
    for audio in tqdm(audios, desc=name, unit="clip"):
        t0 = time.perf_counter()
        _, segments, _, _ = transcribe_segments(model, audio, options)
        t1 = time.perf_counter()
        if timed:
            transcribe_segments(model, audio, replace(options, word_timestamps=False))
            without += time.perf_counter() - t1
        with_words += t1 - t0
        words.append([w for s in segments for w in s.words])
    return words, with_words, without


def compare(words: list[list], reference: list[list]) -> dict:
    """Matched share and |start| / |end| differences of one model's words against the reference's."""
    starts, ends, matched = [], [], 0
    for mine, theirs in zip(words, reference):
        s, e, m = clip_gaps(mine, theirs)
        starts.append(s)
        ends.append(e)
        matched += m
    row = {"words": sum(len(w) for w in words), "reference_words": sum(len(r) for r in reference), "matched": matched}
    for key, per_clip in (("start", starts), ("end", ends)):
        flat = np.concatenate(per_clip)
        row[key] = {"median": float(np.median(flat)), "p90": float(np.percentile(flat, 90)), "mean": float(flat.mean()),
                    "mean_ci": bootstrap_mean(per_clip), "within_0.1": float(np.mean(flat <= 0.1))}
    return row


def cell(d: dict) -> str:
    return f"{d['median']:.2f} / {d['p90']:.2f} / {d['mean']:.3f} [{d['mean_ci'][0]:.3f}, {d['mean_ci'][1]:.3f}]"


def english_tiny(args, speech: Path) -> tuple[dict, list[str]]:
    clips = draw([read_dataset(speech / "librispeech_other")], args.samples, seed=1)
    audios = [load_audio(c.path) for c in clips]
    seconds = sum(len(a) for a in audios) / 16000
    models = {"dense tiny.en": "tiny.en", "0.7 (default)": str(default_compression(args.work, 0.7))}
    if args.paper:
        models["paper's rule"] = str(args.paper)
    models["dense base (yardstick)"] = "base"
    found = {name: decode(runtime.load(spec), audios, name) for name, spec in models.items()}
    reference = found["dense tiny.en"][0]
    rows, lines = {}, ["| model | words matched | start: median / p90 / mean [95% CI] (s) | end: median / p90 / mean "
                       "[95% CI] (s) | RTFx plain | RTFx with words | words cost |",
                       "|---|---:|---|---|---:|---:|---:|"]
    for name, (words, with_words, without) in found.items():
        row = {"spec": models[name], **compare(words, reference), "seconds_with_words": with_words,
               "seconds_plain": without, "audio_seconds": seconds}
        rows[name] = row
        lines.append(f"| {name} | {row['matched'] / row['reference_words']:.1%} | {cell(row['start'])} | "
                     f"{cell(row['end'])} | {seconds / without:.1f} | {seconds / with_words:.1f} | "
                     f"{with_words / without:.2f}x |")
    return rows, lines


def multilingual_base(args, speech: Path) -> tuple[dict, list[str]]:
    """--base-lite against dense base, each set in its language (given, as eval forces it)."""
    split = multilingual_splits(speech, args.work / "splits")
    sets = {"librispeech_other (en, calibrated)": (split["librispeech_other"], "en"),
            "nemo_pl_heldout (pl, calibrated)": (split["nemo_pl_heldout"], "pl"),
            "emovo_it (it, not calibrated)": (speech / "emovo_it", "it")}
    dense, lite = runtime.load("base"), runtime.load(str(args.base_lite))
    rows, lines = {}, ["| set | words matched | start: median / p90 / mean [95% CI] (s) | end: median / p90 / mean "
                       "[95% CI] (s) |", "|---|---:|---|---|"]
    for name, (path, language) in sets.items():
        audios = [load_audio(c.path) for c in draw([read_dataset(path)], args.base_samples, seed=1)]
        options = replace(WORDS, language=language)
        reference = decode(dense, audios, f"base, {name}", options, timed=False)[0]
        row = {"clips": len(audios), **compare(decode(lite, audios, f"lite, {name}", options, timed=False)[0], reference)}
        rows[name] = row
        lines.append(f"| {name} | {row['matched'] / row['reference_words']:.1%} | {cell(row['start'])} | "
                     f"{cell(row['end'])} |")
    return rows, lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--paper", type=Path, help="the paper's rule on tiny.en (a liteasr checkpoint)")
    p.add_argument("--base-lite", type=Path, help="a compressed base: its words against dense base's instead")
    p.add_argument("--base-samples", type=int, default=40, help="clips per set with --base-lite")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)
    p.add_argument("--json", default="benchmarks/words.json")
    p.add_argument("--markdown")
    args = p.parse_args()
    for given in (args.paper, args.base_lite):
        if given and not (given / "config.json").is_file():
            sys.exit(f"words.py: {given} is not a checkpoint")
    speech = speech_or_exit()
    if args.base_lite:
        rows, lines = multilingual_base(args, speech)
        meta = {"reference": "dense base", "base_lite": str(args.base_lite), "samples": args.base_samples}
    else:
        rows, lines = english_tiny(args, speech)
        meta = {"reference": "dense tiny.en", "set": "librispeech_other", "samples": args.samples}
    emit(lines, args.markdown)
    write_json(args.json, {"command": " ".join(["python", *sys.argv]), "seed": 1,
                           "decoding": "like_faster_whisper(word_timestamps=True)", **meta, "models": rows})


if __name__ == "__main__":
    main()
