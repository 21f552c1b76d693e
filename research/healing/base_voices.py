"""Healing base on more voices, for longer: does the gap of the languages the calibration heard shrink?

    python research/healing/base_voices.py --splits        # the manifests the compress commands read
    python research/healing/base_voices.py MODEL... [--names NAME...] [--control NAME... --variant NAME...]
        [--samples 40] [--seed 1] [--work runs/base] [--defaults] [--json research/healing/base_voices.json]

The models are built by `liteasr compress` (research/healing/base_voices.md gives the commands): base at 0.7
of encoder linear parameters on benchmarks/base.py's calibration (English and Polish, 256 clips) and one
rank plan, with (a) plain PCA factors, (b) the product's healing, (c) healing on the calibration plus more
voices (`--heal-data`), for longer. Each is evaluated beside dense base on benchmarks/base.py's evaluation
sets (speakers disjoint from the calibration's; Italian, German and Spanish never heard), --samples clips
per set drawn with --seed (benchmarks/base.py and the base studies drew with seed 0), each set's language
forced, greedy (--defaults: `transcribe`'s decoding, beam 5 + fallback). Reported: WER, ΔWER of every model against dense base, and each --variant against its --control, all paired
over the same clips (bootstrap 95% intervals); how many clips each set shares with the seed-0 draws.
"""

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import (POLISH_CALIB_SPEAKERS, base_eval_sets, multilingual_splits, rows,  # noqa: E402
                     speech_or_exit, write_manifest)

from liteasr import runtime  # noqa: E402
from liteasr.decoding.transcribe import DecodingOptions  # noqa: E402
from liteasr.evaluation.evaluate import evaluate_dataset, paired_bootstrap  # noqa: E402
from liteasr.evaluation.report import load_eval_sets  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", help="compressed base checkpoints (dense base is added first)")
    p.add_argument("--splits", action="store_true", help="write the split manifests under --work and stop")
    p.add_argument("--names", nargs="+", help="a short name per model (default: its folder's name)")
    p.add_argument("--control", nargs="+", default=[], help="the names each --variant (in order) is also paired against")
    p.add_argument("--variant", nargs="+", default=[])
    p.add_argument("--samples", type=int, default=40)
    p.add_argument("--seed", type=int, default=1, help="the evaluation draw (the base studies used 0)")
    p.add_argument("--work", type=Path, default=Path("runs/base"), help="benchmarks/base.py's work folder")
    p.add_argument("--defaults", action="store_true", help="decode as transcribe does (beam 5 + fallback), not greedily")
    p.add_argument("--json", type=Path, default=Path("research/healing/base_voices.json"))
    args = p.parse_args()
    speech = speech_or_exit()
    split = multilingual_splits(speech, args.work)
    # more Polish to heal on: the neutral clips of the calibration's two Polish speakers (the calibration
    # has their other emotions); the evaluation's two speakers stay unheard
    write_manifest([r for r in rows(speech / "nemo_pl") if r["speaker"] in POLISH_CALIB_SPEAKERS],
                   args.work / "nemo_pl_calib_speakers", speech / "nemo_pl")
    if args.splits:
        return 0
    names = ["base", *(args.names or [Path(m).name for m in args.models])]
    if not args.models or len(names) != len(args.models) + 1:
        sys.exit("base_voices.py: give the models, and one --names entry per model")
    if len(args.control) != len(args.variant) or not set(args.control + args.variant) <= set(names):
        sys.exit("base_voices.py: --control and --variant name models of --names, one control per variant")
    sets_paths = base_eval_sets(speech, split)
    sets = load_eval_sets(sets_paths, args.samples, seed=args.seed)
    dev = {ds.name: {str(c.path) for c in ds.clips} for ds in load_eval_sets(sets_paths, args.samples, seed=0)}
    shared = {ds.name: len(dev[ds.name] & {str(c.path) for c in ds.clips}) for ds in sets}

    options = DecodingOptions.like_faster_whisper() if args.defaults else None
    errors, results = {}, {}
    for name, spec in zip(names, ["base", *args.models]):
        loaded = runtime.load(spec, device="cpu")
        errors[name], results[name] = {}, {"model": spec, "datasets": {}}
        for ds in sets:
            r = evaluate_dataset(loaded, ds, progress=True, options=options)
            errors[name][ds.name] = [(t["errors"], t["words"]) for t in r.transcripts]
            results[name]["datasets"][ds.name] = r.summary()
        del loaded
    pairs = [("base", n) for n in names[1:]] + list(zip(args.control, args.variant))
    paired = {f"{b} - {a}": {ds.name: asdict(paired_bootstrap(errors[a][ds.name], errors[b][ds.name]))
                             for ds in sets} for a, b in pairs}
    out = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv), "sets": sets_paths,
           "samples": args.samples, "seed": args.seed, "decoding": asdict(options) if options else "greedy", "clips_shared_with_seed_0": shared,
           "results": results, "paired": paired}
    args.json.write_text(json.dumps(out, indent=1))

    print("| set | " + " | ".join(names) + "".join(f" | {v} - {c}" for c, v in zip(args.control, args.variant)) + " |")
    for ds in sets:
        cells = [f"{results['base']['datasets'][ds.name]['wer']:.2f}"]
        for n in names[1:]:
            d = paired[f"{n} - base"][ds.name]
            cells.append(f"{results[n]['datasets'][ds.name]['wer']:.2f} ({d['delta']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}])")
        for c, v in zip(args.control, args.variant):
            d = paired[f"{v} - {c}"][ds.name]
            cells.append(f"{d['delta']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]")
        print(f"| {ds.name} ({shared[ds.name]} of {len(ds.clips)} in seed 0's draw) | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
