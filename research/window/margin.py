"""Where a model healed for the short window loses words, and whether a wider margin after the audio helps.

    python research/window/margin.py [--margins 1 2 3] [--samples 80] [--work runs/window]
        [--json research/window/margin.json]

benchmarks/window.py's healed models (runs/window/tiny.en-window-5 and tiny.en-0.7-window-5: healed for
windows of the audio + 1 s, at least 5 s), evaluated on the *development* draws of research/window/steps.py
(seed 0, --samples clips of librispeech_other and of speechocean's other speakers; benchmarks/window.py
reports on seed-1 draws), greedy. For each model: its padded 30 s window, then its healed weights on windows
of the audio + each --margins value (floor 5 s; the healing saw margin 1). WER and ΔWER against the same
model padded (paired bootstrap), runaways, and where the short window's extra errors sit: how many clips lose
their reference's last word where the padded window kept it (a window that ends too close to the speech
cuts its end) against clips that lose a word elsewhere.
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
from liteasr.decoding.transcribe import DecodingOptions  # noqa: E402
from liteasr.evaluation.evaluate import evaluate_dataset, normalize, paired_bootstrap  # noqa: E402
from liteasr.models import whisper  # noqa: E402


def last_word_lost(reference: str, padded: str, short: str) -> bool:
    """The reference's last word ends the padded transcript but not the short window's."""
    ref, pad, sho = (normalize(t).split() for t in (reference, padded, short))
    return bool(ref) and bool(pad) and pad[-1] == ref[-1] and (not sho or sho[-1] != ref[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--margins", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    args, speech, split, started = start_study(p, "research/window/margin.json")
    sets = development_sets(speech, split, args.samples)
    rows = {}
    for name, (padded_spec, healed_dir) in healed_window_models(args.work, args.floor).items():
        padded_model, healed_model = runtime.load(padded_spec), runtime.load(str(healed_dir))
        rows[name] = {}
        base = {ds.name: evaluate_dataset(padded_model, ds, options=DecodingOptions(window=30)) for ds in sets}
        rows[name]["padded 30 s"] = {n: {"wer": r.summary()["wer"]} for n, r in base.items()}
        for margin in args.margins:
            policy = whisper.WindowPolicy(floor=args.floor, margin=margin)
            row = {}
            for ds in sets:
                r = evaluate_dataset(healed_model, ds, options=DecodingOptions(window=policy))
                pad = base[ds.name].transcripts
                a = [(t["errors"], t["words"]) for t in pad]
                b = [(t["errors"], t["words"]) for t in r.transcripts]
                worse = [i for i, (x, y) in enumerate(zip(a, b)) if y[0] > x[0]]
                end = [i for i in worse if last_word_lost(pad[i]["reference"], pad[i]["hypothesis"],
                                                          r.transcripts[i]["hypothesis"])]
                s = r.summary()
                row[ds.name] = {"wer": s["wer"], "runaways": s["runaways"], "deletions": s["deletions"],
                                "insertions": s["insertions"], "substitutions": s["substitutions"],
                                "delta_wer": asdict(paired_bootstrap(a, b)),
                                "clips_worse": len(worse), "clips_worse_last_word_lost": len(end),
                                "clips_better": sum(y[0] < x[0] for x, y in zip(a, b))}
            rows[name][f"healed, margin {margin:g} s"] = row
            print(name, margin, {n: round(v["delta_wer"]["delta"], 2) for n, v in row.items()}, flush=True)
    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
               "evaluation": [ds.name for ds in sets], "samples": args.samples, "seed": 0, "floor": args.floor,
               "rows": rows, "minutes": (time.time() - started) / 60}
    args.json.write_text(json.dumps(payload, indent=1))
    for name, by in rows.items():
        for label, row in by.items():
            cells = [f"{v['wer']:.2f}" + (f" ({v['delta_wer']['delta']:+.2f} [{v['delta_wer']['low']:+.2f}, "
                                          f"{v['delta_wer']['high']:+.2f}]; worse {v['clips_worse']}, last word "
                                          f"{v['clips_worse_last_word_lost']}, better {v['clips_better']})"
                                          if "delta_wer" in v else "") for v in row.values()]
            print(f"| {name} | {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
