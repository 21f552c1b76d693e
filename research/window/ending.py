"""How sure a short window's end-of-text is, and what decoding the unsure clips again on the padded window buys.

    python research/window/ending.py [--thresholds 0.3,0.5,0.7,0.9] [--samples 80] [--work runs/window]
        [--json research/window/ending.json]

benchmarks/window.py's models healed for the window that --work holds, on the development draws of
research/window/steps.py (seed 0, --samples clips of librispeech_other and of speechocean's other speakers),
greedy. Each clip decoded three ways: the model it was healed from on the padded 30 s window (the reference
point of issue 37's goal), the healed model on its short window with the guard off (with the probability of
the end-of-text it chose; none when it ran to its token budget), and the healed model on the padded window (what
the guard falls back to). For each threshold P, decoding.transcribe's rule (ends_unsurely): a clip whose
end-of-text on the short window is less likely than P, or missing, or whose text compresses like a loop, takes
its padded text. Per model, set and P: WER, ΔWER against
the padded model with its paired-bootstrap interval, and the clips decoded again (the guard's cost in speed).
Decoding is deterministic and a clip's text does not depend on its batch-mates, so each P's transcripts are
exactly what `DecodingOptions(window_end_threshold=P)` gives (tests/test_window.py checks that rule).
"""

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _study import start_study, development_sets, healed_window_models  # noqa: E402

from liteasr import runtime  # noqa: E402
from liteasr.data.audio import SAMPLE_RATE, load_audio  # noqa: E402
from liteasr.decoding.search import Hypothesis, compression_ratio  # noqa: E402
from liteasr.decoding.transcribe import (DecodingOptions, batches_by_window, check_options,  # noqa: E402
                                         ends_unsurely, transcribe)
from liteasr.evaluation.evaluate import corpus_wer, paired_bootstrap, utterance_errors  # noqa: E402

WAYS = {"padded": "the model it was healed from, padded", "window": "healed, short window, guard off",
        "healed_padded": "healed, padded"}


def decode(model, audios: list, references: list[str], options: DecodingOptions) -> list[dict]:
    """Per clip: text, errors, reference words, tokens and the end-of-text's log-probability."""
    resolved = check_options(model, options)
    texts, hyps = [None] * len(audios), [None] * len(audios)
    for idx in batches_by_window([len(a) for a in audios], resolved, 8):
        out = transcribe(model, [audios[i] for i in idx], progress=False, warmup=False, options=options)
        for k, i in enumerate(idx):
            texts[i], hyps[i] = out.texts[k], out.hypotheses[k]
    return [{"text": t, "errors": e, "words": w, "tokens": len(h.tokens), "end_logprob": h.end_logprob}
            for t, h, (e, w) in zip(texts, hyps, utterance_errors(references, texts))]


def guarded(clips: list[dict], threshold: float) -> tuple[list[dict], int]:
    """Each clip's outcome under the guard at `threshold` and how many clips it decodes again."""
    options = DecodingOptions(window_end_threshold=threshold)
    again = [ends_unsurely(Hypothesis([], 0.0, 0.0, compression_ratio=compression_ratio(c["window"]["text"]),
                                      end_logprob=c["window"]["end_logprob"]), options) for c in clips]
    return [c["healed_padded"] if a else c["window"] for c, a in zip(clips, again)], sum(again)


def score(references: list[str], padded: list[dict], other: list[dict]) -> dict:
    return {"wer": corpus_wer(references, [o["text"] for o in other]).wer,
            "delta_wer": asdict(paired_bootstrap([(p["errors"], p["words"]) for p in padded],
                                                 [(o["errors"], o["words"]) for o in other]))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--thresholds", default="0.3,0.5,0.7,0.9", help="end-of-text probabilities to try")
    args, speech, split, started = start_study(p, "research/window/ending.json")
    thresholds = [float(t) for t in args.thresholds.split(",")]
    sets = development_sets(speech, split, args.samples)
    rows, clips_out = {}, {}
    for name, (padded_spec, healed_dir) in healed_window_models(args.work, args.floor).items():
        base, healed = runtime.load(padded_spec), runtime.load(str(healed_dir))
        rows[name], clips_out[name] = {}, {}
        for ds in sets:
            audios, refs = [load_audio(c) for c in ds.clips], [c.text for c in ds.clips]
            ways = {"padded": decode(base, audios, refs, DecodingOptions(window=30)),
                    "window": decode(healed, audios, refs, DecodingOptions(window_end_threshold=None)),
                    "healed_padded": decode(healed, audios, refs, DecodingOptions(window=30))}
            clips = [{"audio": str(c.path), "seconds": len(a) / SAMPLE_RATE, "reference": c.text,
                      **{way: ways[way][i] for way in WAYS}} for i, (c, a) in enumerate(zip(ds.clips, audios))]
            out = {way: score(refs, ways["padded"], ways[way]) for way in ("window", "healed_padded")}
            for t in thresholds:
                outcome, again = guarded(clips, t)
                out[f"guard {t:g}"] = {**score(refs, ways["padded"], outcome), "padded_again": again}
            out["padded"] = {"wer": corpus_wer(refs, [c["text"] for c in ways["padded"]]).wer}
            rows[name][ds.name], clips_out[name][ds.name] = out, clips
            print(name, ds.name, {k: round(v["wer"], 2) for k, v in out.items()}, flush=True)
    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
               "evaluation": [ds.name for ds in sets], "samples": args.samples, "seed": 0, "floor": args.floor,
               "decoding": "greedy", "ways": WAYS, "thresholds": thresholds, "rows": rows, "clips": clips_out,
               "minutes": (time.time() - started) / 60}
    args.json.write_text(json.dumps(payload, indent=1))
    print("| model | set | decoding | WER | ΔWER vs padded [95%] | clips decoded again |")
    print("|---|---|---|---:|---|---:|")
    for name, by_set in rows.items():
        for set_name, out in by_set.items():
            for way, r in out.items():
                d = r.get("delta_wer")
                cell = f"{d['delta']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]" if d else ""
                print(f"| {name} | {set_name} | {way} | {r['wer']:.2f} | {cell} | {r.get('padded_again', '')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
