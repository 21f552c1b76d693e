"""Multilingual Whisper base, compressed: every budget, every language (issue 34's results table).

    python benchmarks/base.py [--targets 0.8 0.7 0.6 0.5] [--samples 40] [--clips 256] [--work runs/base]
        [--heal-minutes 15] [--json benchmarks/base.json] [--markdown FILE]

One calibration, with `liteasr sweep`'s function (`run_sweep`): English (librispeech_calib and half of
speechocean_train's speakers) and Polish (nemo_pl_calib of two speakers), --clips clips. From it: the
paper's rule (0.99:0.999, plain PCA factors) and the default recipe (measured encoder damage, healing) at
each --targets fraction of encoder linear parameters. Evaluated beside dense base, --samples clips per
set (seed 0), each set's language forced from its manifest, ΔWER against dense base with paired-bootstrap
95% intervals: English on unseen speakers (librispeech_other, speechocean's other speakers), Polish on
its other two speakers (a language the calibration heard), Italian, German and Spanish (languages it did
not hear). Then dense tiny.en against dense base on the same English clips: is a compressed base the
better English model at a given encoder cost? Split manifests and checkpoints go to --work, never into
../shared. Runtimes of a compressed base (ONNX int8 export against CTranslate2 int8 base):
`python benchmarks/runtimes.py WORK/sweep/encoder-params-0.6-heal --model base`.

    python benchmarks/base.py --decoding defaults [--json benchmarks/base_defaults.json]

evaluates the models a greedy run left in WORK/sweep (those its --greedy JSON names), on the same clips, with
`transcribe`'s defaults (faster-whisper's: beam 5, temperature fallback, silence skipped) instead of greedy
decoding: what users of `transcribe` and `serve` get. Nothing is compressed.

    python benchmarks/base.py --reuse

evaluates those models again greedily (after a change to evaluation, e.g. its scoring) and rewrites the greedy
JSON; it records the run that built them. Nothing is compressed.
"""

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from _common import (base_calibration, base_eval_sets, emit, multilingual_splits, speech_or_exit, wer_cell,
                     write_json)

from liteasr.decoding.transcribe import DecodingOptions
from liteasr.evaluation.report import evaluate_models, load_eval_sets
from liteasr.evaluation.sweep import run_sweep
from liteasr.refine import HealConfig

# languages the calibration holds (of other speakers); sets whose manifests state none are English here
HEARD = {"en": "calibrated", "pl": "calibrated"}


def table(payload: dict) -> list[str]:
    """The markdown of a run: WER with ΔWER against dense base per set, then the clips each model's language
    identification took for another language (each set's language is forced, so these are not word errors)."""
    results, tiny = payload["results"], payload["tiny_en_vs_base"][1]
    names = list(results[0]["datasets"])
    languages = {n: results[0]["datasets"][n]["language"] or "en" for n in names}
    decoding = "greedy" if payload.get("decoding") is None else "transcribe's defaults (beam 5 + fallback)"
    lines = [f"Whisper base, `{payload['command']}` ({payload['date']}, {payload['minutes']:.0f} min), {decoding}; "
             "WER (ΔWER vs dense base [95% CI])", "",
             *([f"Models built by `{payload['built']['command']}` ({payload['built']['date']}, "
                f"{payload['built']['minutes']:.0f} min).", ""] if payload.get("built") else []),
             "| model | encoder params | GFLOPs/window | " + " | ".join(
                 f"{n} ({languages[n]}, {HEARD.get(languages[n], 'not calibrated')})" for n in names) + " |",
             "|---|---:|---:|" + "---|" * len(names)]
    for r in results:
        lines.append(f"| {r['label']} | {r['encoder_params'] / 1e6:.2f}M | {r['encoder_gflops']:.1f} | "
                     + " | ".join(wer_cell(r["datasets"][n]) for n in names) + " |")
    lines.append(f"| dense tiny.en | {tiny['encoder_params'] / 1e6:.2f}M | {tiny['encoder_gflops']:.1f} | "
                 + " | ".join(wer_cell(tiny["datasets"][n]) if n in tiny["datasets"] else "-" for n in names) + " |")
    lines += ["", "Language identification: clips detected as another language than the set's (decoded in the "
              "set's language all the same)", "", "| model | " + " | ".join(names) + " |",
              "|---|" + "---:|" * len(names)]
    for r in results:
        cells = [r["datasets"][n] for n in names]
        lines.append(f"| {r['label']} | " + " | ".join(
            f"{d['lid_errors']} / {d['lid_checked']}" if d.get("lid_checked") else "-" for d in cells) + " |")
    if payload.get("decoding") is not None:
        lines += ["", "Clips decoded again at a higher temperature (a guard tripped) / transcripts over 3x their "
                  "reference in words", "", "| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for r in results:
            lines.append(f"| {r['label']} | " + " | ".join(
                f"{r['datasets'][n]['fallbacks']} / {r['datasets'][n]['runaways']}" for n in names) + " |")
    return lines


def reevaluated(greedy_json: str, sets: list[str], samples: int,
                options: DecodingOptions | None) -> tuple[list[dict], dict]:
    """The models a greedy run names (in WORK/sweep) evaluated again with `options` (None: greedy), labelled as
    there; and the command, date and minutes of the run that built them."""
    greedy = json.loads(Path(greedy_json).read_text())
    models = [r["model"] for r in greedy["results"]]
    missing = [m for m in models[1:] if not (Path(m) / "config.json").is_file()]
    if missing:
        sys.exit(f"base.py: {missing[0]} is missing; run benchmarks/base.py (without --reuse or --decoding) first")
    results = evaluate_models(models, load_eval_sets(sets, samples, seed=0), latency=False, progress=True,
                              options=options)
    for r, g in zip(results, greedy["results"]):
        r["label"] = g["label"]
    built = greedy.get("built") or {k: greedy[k] for k in ("command", "date", "minutes")}
    return results, built


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", type=float, default=[0.8, 0.7, 0.6, 0.5])
    p.add_argument("--clips", type=int, default=256, help="calibration clips (seed 0)")
    p.add_argument("--samples", type=int, default=40, help="evaluation clips per set (seed 0)")
    p.add_argument("--heal-minutes", type=float, default=HealConfig().minutes)
    p.add_argument("--work", type=Path, default=Path("runs/base"))
    p.add_argument("--decoding", choices=["greedy", "defaults"], default="greedy",
                   help="defaults: evaluate the greedy run's models with transcribe's defaults, compress nothing")
    p.add_argument("--reuse", action="store_true",
                   help="greedy: evaluate the models the --greedy run left in WORK/sweep again, compress nothing")
    p.add_argument("--greedy", default="benchmarks/base.json",
                   help="the greedy run's JSON (--decoding defaults, --reuse)")
    p.add_argument("--json", help="default: benchmarks/base.json, or base_defaults.json with --decoding defaults")
    p.add_argument("--markdown")
    args = p.parse_args()
    speech, started = speech_or_exit(), time.time()
    split = multilingual_splits(speech, args.work)
    calibration = base_calibration(speech, split)
    sets = base_eval_sets(speech, split)
    english = sets[:2]
    options = DecodingOptions.like_faster_whisper() if args.decoding == "defaults" else None
    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
               "calibration": calibration, "evaluation": sets, "minutes": None,
               "decoding": asdict(options) if options else None}
    if options or args.reuse:
        payload["greedy"] = args.greedy
        payload["results"], payload["built"] = reevaluated(args.greedy, sets, args.samples, options)
    else:
        payload["results"] = run_sweep("base", calibration, sets, ["0.99:0.999"], args.work / "sweep",
                                       samples=args.clips, eval_samples=args.samples, targets=args.targets,
                                       refines=["heal"], heal_config=HealConfig(minutes=args.heal_minutes),
                                       overwrite=True)
    payload["tiny_en_vs_base"] = evaluate_models(["base", "tiny.en"], load_eval_sets(english, args.samples, seed=0),
                                                 latency=False, progress=True, options=options)
    payload["minutes"] = (time.time() - started) / 60
    write_json(args.json or ("benchmarks/base_defaults.json" if args.decoding == "defaults" else "benchmarks/base.json"),
               payload)

    emit(table(payload), args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
