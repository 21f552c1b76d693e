"""Timestamped transcription, clip by clip against batched: what `transcribe_segments` on a list of clips (the
server's `verbose_json`, `srt` and `vtt` requests, `transcribe --word-timestamps`) gains over decoding each clip
alone, and whether each clip's result is the one it gets alone.

    python benchmarks/segments.py [--samples 40] [--long 8] [--batch-size 8] [--json benchmarks/segments.json]

Models, PyTorch fp32 on the CPU, decoded with faster-whisper's defaults (`transcribe`'s) and timestamps:
- dense tiny.en on --samples clips of librispeech_other (seed 1), segments, and segments with word timestamps;
- dense multilingual base on --samples clips of nemo_pl, language detected (its first window's encoding serves
  detection and decoding);
- dense tiny.en on --long clips of 50-70 s, each joined from consecutive librispeech_other clips (long-form: every
  clip's first window decodes in one batch; later windows batch when their previous text is as long).
Each configuration runs alone (a loop over the clips) and batched (one call with the list), interleaved, twice;
the faster of each is kept. "same text" counts clips whose text is identical both ways; segment and word times are
compared over clips with the same text.
"""

import argparse
import sys
import time

import numpy as np
import torch
from tqdm.auto import tqdm
from _common import emit, speech_or_exit, write_json

from liteasr import runtime
from liteasr.data.audio import SAMPLE_RATE, draw, load_audio, read_dataset
from liteasr.decoding.transcribe import DecodingOptions, transcribe_segments

SEGMENTS = DecodingOptions.like_faster_whisper()
WORDS = DecodingOptions.like_faster_whisper(word_timestamps=True)


def joined(audios: list[np.ndarray], n: int, low: float = 50.0, high: float = 70.0) -> list[np.ndarray]:
    """n clips of low-high seconds, each consecutive clips of `audios` end to end."""
    out, current = [], []
    for audio in audios:
        current.append(audio)
        seconds = sum(len(a) for a in current) / SAMPLE_RATE
        if seconds >= low:
            if seconds <= high:
                out.append(np.concatenate(current))
            current = []
        if len(out) == n:
            break
    return out


def run_once(model, audios, options, batch_size: int, batched: bool, name: str) -> tuple[float, list]:
    t0 = time.perf_counter()
    if batched:
        out = transcribe_segments(model, audios, options, batch_size=batch_size)
    else:
        out = [transcribe_segments(model, a, options) for a in tqdm(audios, desc=name, unit="clip", leave=False)]
    return time.perf_counter() - t0, out


def compare(alone: list, batched: list, words: bool) -> dict:
    """Clips with the same text, and the largest time difference (segments, words) over those."""
    same = [i for i, (a, b) in enumerate(zip(alone, batched)) if a[0] == b[0]]
    gap, word_gap, segments_same = 0.0, 0.0, 0
    for i in same:
        sa, sb = alone[i][1], batched[i][1]
        if len(sa) == len(sb):
            segments_same += 1
            gap = max([gap] + [max(abs(x.start - y.start), abs(x.end - y.end)) for x, y in zip(sa, sb)])
            if words:
                wa = [w for s in sa for w in s.words or []]
                wb = [w for s in sb for w in s.words or []]
                word_gap = max([word_gap] + [max(abs(x.start - y.start), abs(x.end - y.end)) for x, y in zip(wa, wb)])
    return {"clips": len(alone), "same_text": len(same), "same_segment_count": segments_same,
            "max_segment_gap_s": round(gap, 3), "max_word_gap_s": round(word_gap, 3) if words else None,
            "same_language": sum(a[2] == b[2] for a, b in zip(alone, batched))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=40)
    p.add_argument("--long", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", default="benchmarks/segments.json")
    p.add_argument("--markdown")
    args = p.parse_args()
    speech = speech_or_exit()
    english = [load_audio(c) for c in draw([read_dataset(speech / "librispeech_other")], args.samples, seed=1)]
    polish = [load_audio(c) for c in draw([read_dataset(speech / "nemo_pl")], args.samples, seed=1)]
    pool = [load_audio(c) for c in draw([read_dataset(speech / "librispeech_other")], None)]
    long = joined(pool[len(english):], args.long)  # not the short clips above
    tiny, base = runtime.load("tiny.en"), runtime.load("base")
    configs = [("tiny.en", "segments", tiny, english, SEGMENTS), ("tiny.en", "segments + words", tiny, english, WORDS),
               ("base, Polish, detected", "segments", base, polish, SEGMENTS),
               ("tiny.en, 50-70 s clips", "segments", tiny, long, SEGMENTS)]
    rows = []
    for model_name, what, model, audios, options in configs:
        name = f"{model_name} / {what}"
        transcribe_segments(model, audios[:2], options, batch_size=2)  # warm-up
        best = {False: float("inf"), True: float("inf")}
        outputs = {}
        for _ in range(args.repeats):
            for batched in (False, True):
                seconds, outputs[batched] = run_once(model, audios, options, args.batch_size, batched, name)
                best[batched] = min(best[batched], seconds)
        audio_s = sum(len(a) for a in audios) / SAMPLE_RATE
        row = {"model": model_name, "output": what, "audio_s": round(audio_s, 1), "alone_s": round(best[False], 2),
               "batched_s": round(best[True], 2), "speedup": round(best[False] / best[True], 2),
               "rtfx_alone": round(audio_s / best[False], 1), "rtfx_batched": round(audio_s / best[True], 1),
               **compare(outputs[False], outputs[True], options.word_timestamps)}
        print(row, file=sys.stderr)
        rows.append(row)
    result = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
              "batch_size": args.batch_size, "repeats": args.repeats, "threads": torch.get_num_threads(),
              "rows": rows}
    write_json(args.json, result)
    lines = ["| model, clips | output | audio s | alone s (RTFx) | batched s (RTFx) | speed-up | same text | "
             "largest time gap, same text |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        gap = r["max_segment_gap_s"] if r["max_word_gap_s"] is None else max(r["max_segment_gap_s"], r["max_word_gap_s"])
        lines.append(f"| {r['model']} | {r['output']} | {r['audio_s']:.0f} | {r['alone_s']:.1f} ({r['rtfx_alone']}) | "
                     f"{r['batched_s']:.1f} ({r['rtfx_batched']}) | {r['speedup']:.2f}x | {r['same_text']}/{r['clips']} | "
                     f"{gap:.2f} s |")
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
