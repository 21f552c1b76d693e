"""Multilingual Whisper base: which languages a compression keeps, by what the calibration heard.

    python research/multilingual/multilingual.py [--targets 0.6] [--allocation encoder] [--refine none] [--mixes en en+pl]
        [--samples 60]
        [--json research/multilingual/multilingual.json] [--markdown research/multilingual/multilingual.md]

Calibration and evaluation speakers are disjoint in every language that has both:
- English: calibration on librispeech_calib and half of speechocean_train's speakers (seed 0); evaluation
  on librispeech_other and speechocean_train's other speakers;
- Polish: calibration on nemo_pl_calib of speakers IC0 and KS0 (one woman, one man); evaluation on
  nemo_pl of MK0 and SM0;
- Italian (emovo_it), German (emodb_de) and Spanish (css10_es) are never in the calibration.

Each mix (`en`: English calibration only; `en+pl`: English and Polish) is compressed with `liteasr
compress base --target-params T` (`--allocation` and `--refine` as given) on --clips clips, then dense
base and every compression are evaluated with `liteasr eval`'s function: each set's language forced from
its manifest, ΔWER against dense base with paired-bootstrap 95% intervals, one row per language. The
split manifests and checkpoints go to --work (default runs/multilingual), never into ../shared.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the benchmarks' _common
from _common import emit, multilingual_splits as splits, speech_or_exit, wer_cell  # noqa: E402

from liteasr.evaluation.report import evaluate_models, load_eval_sets  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from where import HEARD_SPEAKERS, speaker_split  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", type=float, default=[0.6])
    p.add_argument("--mixes", nargs="+", choices=["en", "en+pl", "en+pl+synthetic", "en+pl+it+de"],
                   default=["en", "en+pl"])
    p.add_argument("--synthetic", metavar="DIR", nargs="+", default=[],
                   help="for the en+pl+synthetic mix: synthetic speech (research/multilingual/synth_languages.py); "
                        "with several folders, one mix each (en+pl+FOLDER NAME)")
    p.add_argument("--plan", metavar="JSON", help="apply this rank plan to every mix (compress --plan; no --targets)")
    p.add_argument("--refine", choices=["none", "heal", "auto"], default="none")
    p.add_argument("--also", nargs="*", default=[], metavar="MODEL",
                   help="models made elsewhere to evaluate beside (e.g. benchmarks/base.py's runs/base/sweep/...)")
    p.add_argument("--allocation", default="encoder", help="compress --allocation (default encoder)")
    p.add_argument("--clips", type=int, default=256, help="calibration clips (seed 0)")
    p.add_argument("--samples", type=int, default=60, help="evaluation clips per set (seed 0; all if fewer)")
    p.add_argument("--work", default="runs/multilingual")
    p.add_argument("--json", default="research/multilingual/multilingual.json")
    p.add_argument("--markdown")
    args = p.parse_args()
    speech, work = speech_or_exit(), Path(args.work)
    split = splits(speech, work)
    english = [str(speech / "librispeech_calib"), str(split["speechocean_calib"])]
    mixes = {"en": english, "en+pl": english + [str(split["nemo_pl_calib_half"])]}
    synthetic = {"en+pl+synthetic" if len(args.synthetic) == 1 else f"en+pl+{Path(d).name}": mixes["en+pl"] + [d]
                 for d in args.synthetic}
    mixes.update(synthetic)
    heard = {name: speaker_split(speech, work, name) for name in HEARD_SPEAKERS}  # it, de: (calibration, other)
    mixes["en+pl+it+de"] = mixes["en+pl"] + [str(calib) for calib, _ in heard.values()]
    if "en+pl+synthetic" in args.mixes and not args.synthetic:
        p.error("the en+pl+synthetic mix needs --synthetic DIR")
    models, minutes = [], {}
    chosen = [m for mix in args.mixes for m in (synthetic if mix == "en+pl+synthetic" else [mix])]
    for target in ([None] if args.plan else args.targets):
        for mix in chosen:
            budget = ["--plan", args.plan] if args.plan else ["--target-params", str(target), "--allocation",
                                                              args.allocation]
            out = work / f"base-{mix}-{Path(args.plan).stem if args.plan else f'{target}-{args.allocation}'}-" \
                         f"{args.refine}"
            if not (out / "config.json").is_file():
                t0 = time.time()
                command = [sys.executable, "-m", "liteasr", "compress", "base", "--calibration", *mixes[mix],
                           "--calibration-samples", str(args.clips), *budget, "--refine", args.refine,
                           "--output", str(out),
                           "--overwrite"]
                print("$", " ".join(command), flush=True)
                subprocess.run(command, check=True)
                minutes[out.name] = (time.time() - t0) / 60
            models.append(str(out))
    # with the it+de mix, Italian and German are evaluated on the speakers it does not hold, for every model
    italian, german = ((str(heard[n][1]) for n in ("emovo_it", "emodb_de")) if "en+pl+it+de" in args.mixes
                       else (str(speech / "emovo_it"), str(speech / "emodb_de")))
    sets = [str(split["librispeech_other"]), str(split["speechocean_heldout"]), str(split["nemo_pl_heldout"]),
            italian, german, str(speech / "css10_es")]
    models += args.also
    results = evaluate_models(["base", *models], load_eval_sets(sets, args.samples, seed=0), latency=False)
    payload = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(["python", *sys.argv]),
               "calibration": mixes, "compress_minutes": minutes, "results": results}
    Path(args.json).write_text(json.dumps(payload, indent=1))
    names = list(results[0]["datasets"])
    lines = [f"Whisper base, `{payload['command']}` ({payload['date']}); ΔWER vs dense base [95% CI]",
             "", "| model | " + " | ".join(f"{n} ({results[0]['datasets'][n]['language'] or 'en'})" for n in names)
             + " |", "|---|" + "---|" * len(names)]
    for r in results:
        cells = [wer_cell(r["datasets"][n]) for n in names]
        lines.append(f"| {Path(r['model']).name} | " + " | ".join(cells) + " |")
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
