"""Why do liteasr's defaults and faster-whisper's differ on speechocean? Timestamps or the search?

    python research/decoding/timestamps.py [--samples 100] [--work runs/decoding]
        [--json research/decoding/timestamps.json]

benchmarks/decoding.py (2026-12-05) measured faster-whisper's own defaults 3.12 [+0.17, +6.41] WER above
liteasr's defaults on dense tiny.en on speechocean's held-out speakers (issue 36 asks for the two to agree
within the interval), +0.89 [-0.23, +1.90] on librispeech_other. The two search alike (beam 5, patience 1, the
same fallback and guards); on clips padded to one window they give the same text clip by clip when
faster-whisper decodes without timestamps (tests/test_decoding.py). What is left is that faster-whisper's
`transcribe` predicts timestamps by default and liteasr decodes a clip of up to 30 s without them.

On decoding.py's clips (100 a set, seed 1): dense tiny.en and decoding.py's 0.7 compression, each decoded by
liteasr greedily, with the defaults, and with the defaults and timestamps (`transcribe_segments`, the
long-form path `transcribe` takes past 30 s); faster-whisper (CTranslate2 float32 tiny.en) with its defaults
and with its defaults but `without_timestamps=True`. One run, nothing tuned; paired-bootstrap 95% intervals.
"""

import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import decoding_study, write_json  # noqa: E402
from decoding import faster_whisper_texts  # noqa: E402

from liteasr import runtime  # noqa: E402
from liteasr.data.audio import load_audio  # noqa: E402
from liteasr.decoding.transcribe import DecodingOptions, transcribe, transcribe_segments  # noqa: E402
from liteasr.evaluation.evaluate import paired_bootstrap, pooled_wer, utterance_errors  # noqa: E402
from liteasr.models.sources import offline_copy  # noqa: E402

DEFAULTS = DecodingOptions.like_faster_whisper(language="en")
PAIRS = [  # (label, minus this one) for the intervals
    ("liteasr defaults", "liteasr greedy"), ("liteasr defaults + timestamps", "liteasr greedy"),
    ("liteasr defaults + timestamps", "liteasr defaults"),
    ("faster-whisper defaults", "liteasr defaults"), ("faster-whisper defaults", "liteasr defaults + timestamps"),
    ("faster-whisper defaults, no timestamps", "liteasr defaults"),
    ("faster-whisper defaults, no timestamps", "faster-whisper defaults")]


def liteasr_texts(loaded, audios) -> dict[str, list[str]]:
    texts = {"liteasr greedy": transcribe(loaded, audios, progress=False, options=DecodingOptions(language="en")).texts,
             "liteasr defaults": transcribe(loaded, audios, progress=False, options=DEFAULTS).texts}
    texts["liteasr defaults + timestamps"] = [transcribe_segments(loaded, a, DEFAULTS)[0]
                                              for a in tqdm(audios, desc="timestamps", leave=False)]
    return texts


def main() -> int:
    args, sets = decoding_study(__doc__, "research/decoding/timestamps.json")
    started = time.time()
    import faster_whisper

    compressed = args.work / "tiny.en-0.7"
    if not (compressed / "config.json").is_file():
        sys.exit(f"error: {compressed} has no model: run benchmarks/decoding.py first")
    models = {"dense tiny.en": runtime.load("tiny.en"), "0.7 (default)": runtime.load(str(compressed))}
    fw = faster_whisper.WhisperModel(str(offline_copy("tiny.en")), device="cpu", compute_type="float32",
                                     cpu_threads=torch.get_num_threads())
    results, transcripts = {}, {}
    for ds in sets:
        audios, refs = [load_audio(c) for c in ds.clips], [c.text for c in ds.clips]
        results[ds.name], transcripts[ds.name] = {}, {}
        for name, loaded in models.items():
            texts = liteasr_texts(loaded, audios)
            if name == "dense tiny.en":
                texts["faster-whisper defaults"] = faster_whisper_texts(fw, audios)[0]
                texts["faster-whisper defaults, no timestamps"] = faster_whisper_texts(fw, audios, without_timestamps=True)[0]
            errors = {label: utterance_errors(refs, t, "en") for label, t in texts.items()}
            intervals = {}
            for a, b in PAIRS:
                if a in errors and b in errors:
                    d = paired_bootstrap(errors[b], errors[a])  # a minus b
                    intervals[f"{a} - {b}"] = {"delta": d.delta, "low": d.low, "high": d.high}
            results[ds.name][name] = {"wer": {label: pooled_wer(e) for label, e in errors.items()},
                                      "differ_from_liteasr_defaults": {label: sum(x != y for x, y in zip(t, texts["liteasr defaults"]))
                                                                       for label, t in texts.items()},
                                      "intervals": intervals}
            transcripts[ds.name][name] = [{"reference": r, **{label: t[i] for label, t in texts.items()}}
                                          for i, r in enumerate(refs)]
            print(ds.name, name, {k: round(v, 2) for k, v in results[ds.name][name]["wer"].items()}, flush=True)
    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
               "threads": torch.get_num_threads(), "samples": args.samples, "results": results,
               "transcripts": transcripts, "minutes": (time.time() - started) / 60}
    write_json(args.json, payload)
    for n in results:
        for name, r in results[n].items():
            print(f"\n{n}, {name}")
            for label, w in r["wer"].items():
                print(f"  {label}: {w:.2f} ({r['differ_from_liteasr_defaults'][label]} clips differ from liteasr defaults)")
            for pair, d in r["intervals"].items():
                print(f"  {pair}: {d['delta']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
