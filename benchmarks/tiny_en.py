"""The default recipe on tiny.en (what `make bench` runs): dense vs the paper's rule vs `liteasr compress
tiny.en --target-params F` with every other default, on unseen speakers, speeds measured side by side.

    python benchmarks/tiny_en.py [--targets 0.7] [--clips 64] [--eval-samples N]
        [--json benchmarks/tiny_en.json] [--markdown benchmarks/RESULTS.md]

Calibration: `--clips` clips (seed 0) of librispeech_calib, vctk_p239 and cathy_arctic (the demo's sources:
130 speakers). Evaluation: librispeech_other and speechocean_train (no speaker of either is in the
calibration), ΔWER against dense tiny.en with paired-bootstrap 95% intervals; encoder ms per 30 s window,
batch 1 and 8, all models interleaved in this process. Each compression is `liteasr.compress` with the
library's defaults (the CLI's), so the rows are what a user gets.
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import emit, speech_or_exit

import liteasr
from liteasr.demo import CALIBRATION

EVAL = ("librispeech_other", "speechocean_train")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="+", type=float, default=[0.7], help="fractions of encoder linear parameters")
    ap.add_argument("--clips", type=int, default=64, help="calibration clips (the compress default)")
    ap.add_argument("--eval-samples", type=int, help="clips per evaluation set (seed 0; default all)")
    ap.add_argument("--work", help="where the checkpoints go (default: a temporary folder)")
    ap.add_argument("--json", default="benchmarks/tiny_en.json")
    ap.add_argument("--markdown", help="append the table to this file (e.g. benchmarks/RESULTS.md)")
    args = ap.parse_args()
    speech, started = speech_or_exit(), time.time()
    work = Path(args.work or tempfile.mkdtemp(prefix="liteasr-bench-"))
    calibration = [str(speech / s) for s in CALIBRATION]
    configs = {"paper rule (--threshold 0.99:0.999)": liteasr.CompressConfig(calibration_samples=args.clips)}
    configs |= {f"--target-params {t} (default)": liteasr.CompressConfig(target_params=t, calibration_samples=args.clips)
                for t in args.targets}
    models, labels = ["tiny.en"], ["tiny.en (dense)"]
    for i, (label, config) in enumerate(configs.items()):
        out = work / f"model-{i}"
        liteasr.compress("tiny.en", calibration, config).save(out, overwrite=True)
        models.append(str(out))
        labels.append(label)
    results = liteasr.evaluate(models, [str(speech / s) for s in EVAL], samples=args.eval_samples)
    for r, label in zip(results, labels):
        r["label"] = label
    command = "python benchmarks/tiny_en.py " + " ".join(sys.argv[1:])
    machine = f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    Path(args.json).write_text(json.dumps({"command": command.strip(), "date": time.strftime("%Y-%m-%d"),
                                           "machine": machine, "minutes": (time.time() - started) / 60,
                                           "calibration": f"{args.clips} clips of {' + '.join(CALIBRATION)}",
                                           "results": results}, indent=1))
    base_ms = results[0]["encoder_ms"]["batch_1"]
    lines = [f"### The default recipe on tiny.en ({time.strftime('%Y-%m-%d')}, {machine})", "",
             f"Command: `{command.strip()}` ({(time.time() - started) / 60:.0f} min; {args.json}). Calibration: "
             f"{args.clips} clips of {' + '.join(CALIBRATION)}; evaluation: "
             + ", ".join(f"{n} ({results[0]['datasets'][n]['n']} clips)" for n in EVAL) + ", unseen speakers.", "",
             "| model | enc params | " + " | ".join(f"WER {n} | Δ [95% CI]" for n in EVAL)
             + " | enc ms b1 | enc speedup | RTFx |",
             "|---|---:|" + "---:|---:|" * len(EVAL) + "---:|---:|---:|"]
    for r in results:
        cells = []
        for n in EVAL:
            d = r["datasets"][n]
            delta = d.get("delta_wer")
            cells += [f"{d['wer']:.2f}", f"{delta['delta']:+.2f} [{delta['low']:+.2f}, {delta['high']:+.2f}]" if delta else "-"]
        rtfx = sum(d["audio_s"] for d in r["datasets"].values()) / sum(
            d["audio_s"] / d["rtfx"] for d in r["datasets"].values())
        lines.append(f"| {r['label']} | {r['encoder_params'] / 1e6:.2f}M | " + " | ".join(cells)
                     + f" | {r['encoder_ms']['batch_1']:.0f} | {base_ms / r['encoder_ms']['batch_1']:.2f}x | {rtfx:.1f} |")
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
