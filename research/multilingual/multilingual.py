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
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the benchmarks' _common
from _common import emit, speech_or_exit  # noqa: E402

from liteasr.evaluation.report import evaluate_models, load_eval_sets

POLISH_CALIB_SPEAKERS = ("IC0", "KS0")


def write_manifest(rows: list[dict], folder: Path, audio_root: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({**r, "audio": str((audio_root / r["audio"]).resolve())}) for r in rows]
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def rows(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "manifest.jsonl").read_text().splitlines() if x.strip()]


def splits(speech: Path, work: Path) -> dict[str, Path]:
    """Calibration and evaluation manifests with disjoint speakers."""
    so = rows(speech / "speechocean_train")
    speakers = sorted({r["speaker"] for r in so})
    random.Random(0).shuffle(speakers)
    calib = set(speakers[: len(speakers) // 2])
    pl_calib = [r for r in rows(speech / "nemo_pl_calib") if r["speaker"] in POLISH_CALIB_SPEAKERS]
    pl_eval = [r for r in rows(speech / "nemo_pl") if r["speaker"] not in POLISH_CALIB_SPEAKERS]
    return {
        "speechocean_calib": write_manifest([r for r in so if r["speaker"] in calib], work / "speechocean_calib",
                                            speech / "speechocean_train"),
        "speechocean_heldout": write_manifest([r for r in so if r["speaker"] not in calib],
                                              work / "speechocean_heldout", speech / "speechocean_train"),
        "nemo_pl_calib_half": write_manifest(pl_calib, work / "nemo_pl_calib_half", speech / "nemo_pl_calib"),
        "nemo_pl_heldout": write_manifest(pl_eval, work / "nemo_pl_heldout", speech / "nemo_pl"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", type=float, default=[0.6])
    p.add_argument("--mixes", nargs="+", choices=["en", "en+pl"], default=["en", "en+pl"])
    p.add_argument("--refine", choices=["none", "heal", "auto"], default="none")
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
    models, minutes = [], {}
    for target in args.targets:
        for mix in args.mixes:
            out = work / f"base-{mix}-{target}-{args.allocation}-{args.refine}"
            if not (out / "config.json").is_file():
                t0 = time.time()
                command = [sys.executable, "-m", "liteasr", "compress", "base", "--calibration", *mixes[mix],
                           "--calibration-samples", str(args.clips), "--target-params", str(target),
                           "--allocation", args.allocation, "--refine", args.refine, "--output", str(out),
                           "--overwrite"]
                print("$", " ".join(command), flush=True)
                subprocess.run(command, check=True)
                minutes[out.name] = (time.time() - t0) / 60
            models.append(str(out))
    sets = [str(speech / "librispeech_other"), str(split["speechocean_heldout"]), str(split["nemo_pl_heldout"]),
            str(speech / "emovo_it"), str(speech / "emodb_de"), str(speech / "css10_es")]
    results = evaluate_models(["base", *models], load_eval_sets(sets, args.samples, seed=0), latency=False)
    payload = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(["python", *sys.argv]),
               "calibration": mixes, "compress_minutes": minutes, "results": results}
    Path(args.json).write_text(json.dumps(payload, indent=1))
    names = list(results[0]["datasets"])
    lines = [f"Whisper base, `{payload['command']}` ({payload['date']}); ΔWER vs dense base [95% CI]",
             "", "| model | " + " | ".join(f"{n} ({results[0]['datasets'][n]['language'] or 'en'})" for n in names)
             + " |", "|---|" + "---|" * len(names)]
    for r in results:
        cells = []
        for n in names:
            d = r["datasets"][n]
            delta = d.get("delta_wer")
            cells.append(f"{d['wer']:.2f}" + (f" ({delta['delta']:+.2f} [{delta['low']:+.2f}, {delta['high']:+.2f}])"
                                              if delta else ""))
        lines.append(f"| {Path(r['model']).name} | " + " | ".join(cells) + " |")
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
