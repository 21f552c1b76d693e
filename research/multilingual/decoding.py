"""Compressed base decoded as `transcribe` decodes: does beam search with the fallback change what it loses?

    python research/multilingual/decoding.py [MODEL] [--samples 40] [--seed 1] [--work runs/base]
        [--json research/multilingual/decoding.json]

Every base study measured greedy decoding (`liteasr eval`'s default, the Open ASR Leaderboard's convention).
Users of `liteasr transcribe` and `serve` get faster-whisper's defaults (`DecodingOptions.like_faster_whisper()`:
beam 5, temperature fallback, silence skipped). Dense base and MODEL (default research/healing/base_voices.md's
product model: base at 0.7, English and Polish calibration, healed) are each evaluated both ways on
benchmarks/base.py's sets (speakers disjoint from the calibration's; Italian, German and Spanish never heard),
--samples clips per set drawn with --seed, each set's language forced. Reported, paired over the same clips
(bootstrap 95% intervals): MODEL - dense under each decoding, and defaults - greedy for each model; and the clips
that hold most of MODEL's extra errors under each decoding, with their transcripts.
"""

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import base_eval_sets, multilingual_splits, speech_or_exit  # noqa: E402

from liteasr import runtime  # noqa: E402
from liteasr.decoding.transcribe import DecodingOptions  # noqa: E402
from liteasr.evaluation.evaluate import evaluate_dataset, paired_bootstrap  # noqa: E402
from liteasr.evaluation.report import load_eval_sets  # noqa: E402

DECODINGS = {"greedy": DecodingOptions(), "defaults": DecodingOptions.like_faster_whisper()}
WORST = 3  # clips listed per set and decoding


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default="runs/base/base-0.7-control")
    p.add_argument("--samples", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", type=Path, default=Path("runs/base"), help="benchmarks/base.py's work folder")
    p.add_argument("--json", type=Path, default=Path("research/multilingual/decoding.json"))
    args = p.parse_args()
    speech, started = speech_or_exit(), time.time()
    sets_paths = base_eval_sets(speech, multilingual_splits(speech, args.work))
    sets = load_eval_sets(sets_paths, args.samples, seed=args.seed)
    errors, texts, results = {}, {}, {}
    for name, spec in (("dense", "base"), ("compressed", args.model)):
        loaded = runtime.load(spec, device="cpu")
        for decoding, options in DECODINGS.items():
            key = (name, decoding)
            errors[key], texts[key], results[f"{name} {decoding}"] = {}, {}, {"model": spec, "datasets": {}}
            for ds in sets:
                r = evaluate_dataset(loaded, ds, progress=True, options=options)
                errors[key][ds.name] = [(t["errors"], t["words"]) for t in r.transcripts]
                texts[key][ds.name] = r.transcripts
                results[f"{name} {decoding}"]["datasets"][ds.name] = r.summary()
        del loaded
    pairs = {f"compressed - dense, {d}": (("dense", d), ("compressed", d)) for d in DECODINGS}
    pairs.update({f"defaults - greedy, {n}": ((n, "greedy"), (n, "defaults")) for n in ("dense", "compressed")})
    paired = {label: {ds.name: asdict(paired_bootstrap(errors[a][ds.name], errors[b][ds.name])) for ds in sets}
              for label, (a, b) in pairs.items()}
    worst = {}
    for d in DECODINGS:
        for ds in sets:
            extra = [(c[0] - e[0], i) for i, (e, c) in
                     enumerate(zip(errors[("dense", d)][ds.name], errors[("compressed", d)][ds.name]))]
            total = sum(x for x, _ in extra)
            top = sorted(extra, reverse=True)[:WORST]
            worst[f"{d} {ds.name}"] = {"extra_errors": total, "clips": [
                {"extra": x, "reference": texts[("dense", d)][ds.name][i].get("reference"),
                 "dense": texts[("dense", d)][ds.name][i].get("hypothesis"),
                 "compressed": texts[("compressed", d)][ds.name][i].get("hypothesis")} for x, i in top]}
    out = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv), "sets": sets_paths,
           "samples": args.samples, "seed": args.seed, "decodings": {d: asdict(o) for d, o in DECODINGS.items()},
           "results": results, "paired": paired, "worst_clips": worst, "minutes": (time.time() - started) / 60}
    args.json.write_text(json.dumps(out, indent=1, default=str))
    cell = lambda d: f"{d['delta']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"  # noqa: E731
    print("| set | dense greedy | dense defaults | compressed greedy | compressed defaults | "
          + " | ".join(pairs) + " |")
    for ds in sets:
        wers = [f"{results[k]['datasets'][ds.name]['wer']:.2f}" for k in
                ("dense greedy", "dense defaults", "compressed greedy", "compressed defaults")]
        print(f"| {ds.name} | " + " | ".join(wers + [cell(paired[label][ds.name]) for label in pairs]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
