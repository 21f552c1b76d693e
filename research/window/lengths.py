"""Where a model healed for the short window loses words against its padded window, by clip length.

    python research/window/lengths.py [--samples 80] [--work runs/window] [--json research/window/lengths.json]
    python research/window/lengths.py --defaults --json research/window/lengths_defaults.json

benchmarks/window.py's models healed for the window that --work holds (dense tiny.en's tiny.en-window-5, the
0.7 model's tiny.en-0.7-window-5), each against the model it was healed from, on the development draws
of research/window/steps.py (seed 0, --samples clips of librispeech_other and of speechocean's other speakers),
greedy (--defaults: transcribe's defaults, beam 5 + temperature fallback). Each clip's errors on the padded
30 s window and on the healed window (the audio + 1 s, at least --floor s), grouped by the clip's duration: under 4 s (the floor's 5 s window, at least 1 s of silence more
than the margin), 4-8 s, 8-12 s, 12 s and over. Per band: clips, reference words, WER padded and windowed,
ΔWER with its paired-bootstrap interval, substitutions / deletions / insertions on each window; and the clips
with at least 3 errors more on the window, with both transcripts.
"""

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _study import start_study, development_sets, healed_window_models  # noqa: E402

from liteasr import runtime  # noqa: E402
from liteasr.data.audio import SAMPLE_RATE, load_audio  # noqa: E402
from liteasr.decoding.transcribe import DecodingOptions  # noqa: E402
from liteasr.evaluation.evaluate import corpus_wer, evaluate_dataset, paired_bootstrap  # noqa: E402

BANDS = ((0.0, 4.0), (4.0, 8.0), (8.0, 12.0), (12.0, 30.0))


def band_name(low: float, high: float) -> str:
    return f"{low:g}-{high:g} s"


def band_of(seconds: float) -> str:
    """The band a clip of `seconds` falls in (the last one for anything longer)."""
    return band_name(*next((b for b in BANDS if seconds < b[1]), BANDS[-1]))


def compare(durations: list[float], padded: list[dict], windowed: list[dict]) -> dict:
    """Per duration band (and all clips): the two windows' WER, ΔWER with its interval, error kinds."""
    out = {}
    for band in [band_name(*b) for b in BANDS] + ["all"]:
        idx = [i for i, d in enumerate(durations) if band == "all" or band_of(d) == band]
        if not idx:
            continue
        a = [(padded[i]["errors"], padded[i]["words"]) for i in idx]
        b = [(windowed[i]["errors"], windowed[i]["words"]) for i in idx]
        refs = [padded[i]["reference"] for i in idx]
        kinds = {name: asdict(corpus_wer(refs, [t[i]["hypothesis"] for i in idx]))
                 for name, t in (("padded", padded), ("window", windowed))}
        out[band] = {"clips": len(idx), "words": sum(w for _, w in a), "seconds": sum(durations[i] for i in idx),
                     "wer_padded": kinds["padded"]["wer"], "wer_window": kinds["window"]["wer"],
                     "delta_wer": asdict(paired_bootstrap(a, b)),
                     "clips_worse": sum(y[0] > x[0] for x, y in zip(a, b)),
                     "clips_better": sum(y[0] < x[0] for x, y in zip(a, b)),
                     "padded": {k: kinds["padded"][k] for k in ("substitutions", "deletions", "insertions")},
                     "window": {k: kinds["window"][k] for k in ("substitutions", "deletions", "insertions")}}
    out["worse_clips"] = [{"audio": padded[i]["audio"], "seconds": durations[i], "reference": padded[i]["reference"],
                           "padded": padded[i]["hypothesis"], "window": windowed[i]["hypothesis"],
                           "errors": [padded[i]["errors"], windowed[i]["errors"]]}
                          for i in range(len(durations)) if windowed[i]["errors"] >= padded[i]["errors"] + 3]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--defaults", action="store_true",
                   help="decode with transcribe's defaults (beam 5 + temperature fallback) instead of greedy")
    args, speech, split, started = start_study(p, "research/window/lengths.json")
    # greedy as benchmarks/window.py measures; --defaults as users decode
    decoding = DecodingOptions.like_faster_whisper() if args.defaults else DecodingOptions()
    sets = development_sets(speech, split, args.samples)
    durations = {ds.name: [len(load_audio(c)) / SAMPLE_RATE for c in ds.clips] for ds in sets}
    rows = {}
    for name, (padded_spec, healed_dir) in healed_window_models(args.work, args.floor).items():
        padded_model, healed_model = runtime.load(padded_spec), runtime.load(str(healed_dir))
        rows[name] = {}
        for ds in sets:
            pad = evaluate_dataset(padded_model, ds, options=replace(decoding, window=30)).transcripts
            win = evaluate_dataset(healed_model, ds, options=decoding).transcripts  # the window it records
            rows[name][ds.name] = compare(durations[ds.name], pad, win)
    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
               "evaluation": [ds.name for ds in sets], "samples": args.samples, "seed": 0, "floor": args.floor,
               "decoding": "beam 5 + fallback (transcribe's defaults)" if args.defaults else "greedy",
               "rows": rows, "minutes": (time.time() - started) / 60}
    args.json.write_text(json.dumps(payload, indent=1))
    print("| model | set | clip length | clips | words | padded | window | ΔWER [95%] | worse / better clips |"
          " deletions padded -> window |")
    print("|---|---|---|---:|---:|---:|---:|---|---|---|")
    for name, by_set in rows.items():
        for set_name, bands in by_set.items():
            for band, r in bands.items():
                if band == "worse_clips":
                    continue
                d = r["delta_wer"]
                print(f"| {name} | {set_name} | {band} | {r['clips']} | {r['words']} | {r['wer_padded']:.2f} | "
                      f"{r['wer_window']:.2f} | {d['delta']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] | "
                      f"{r['clips_worse']} / {r['clips_better']} | {r['padded']['deletions']} -> "
                      f"{r['window']['deletions']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
