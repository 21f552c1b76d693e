"""The default recipe on tiny.en (what `make bench` runs): dense vs the paper's rule vs `liteasr compress
tiny.en --target-params F` with every other default, on unseen speakers, beside faster-whisper's engine;
speeds measured side by side.

    python benchmarks/tiny_en.py [--targets 0.7] [--clips 64] [--eval-samples N] [--work runs/bench]
        [--json benchmarks/tiny_en.json] [--markdown benchmarks/RESULTS.md]

Calibration: `--clips` clips (seed 0) of librispeech_calib, vctk_p239 and cathy_arctic (the demo's sources:
130 speakers). Evaluation: librispeech_other and speechocean_train (no speaker of either is in the
calibration), greedy (the Open ASR Leaderboard convention, `liteasr eval`'s default), ΔWER against dense
tiny.en with paired-bootstrap 95% intervals; encoder ms per 30 s window at batch 1, all models interleaved in
this process; RTFx of the whole evaluation. Each compression is `liteasr.compress` with the library's defaults
(the CLI's), so the rows are what a user gets; each is also exported to ONNX Runtime int8 (`liteasr export
--quantize int8`), and dense tiny.en runs through CTranslate2 int8, faster-whisper's engine and default type.
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from _common import DEFAULT_WORK, default_compression, emit, speech_or_exit, write_json

import liteasr
from liteasr.demo import CALIBRATION

EVAL = ("librispeech_other", "speechocean_train")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="+", type=float, default=[0.7], help="fractions of encoder linear parameters")
    ap.add_argument("--clips", type=int, default=64, help="calibration clips (the compress default)")
    ap.add_argument("--eval-samples", type=int, help="clips per evaluation set (seed 0; default all)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"where the models go (default {DEFAULT_WORK})")
    ap.add_argument("--json", default="benchmarks/tiny_en.json")
    ap.add_argument("--markdown", help="append the table to this file (e.g. benchmarks/RESULTS.md)")
    args = ap.parse_args()
    speech, started = speech_or_exit(), time.time()
    rows = {"tiny.en (dense)": "tiny.en"}
    paper = args.work / "tiny.en-paper"
    config = liteasr.CompressConfig(threshold="0.99:0.999", calibration_samples=args.clips)  # the paper's rule
    liteasr.compress("tiny.en", [str(speech / s) for s in CALIBRATION], config).save(paper, overwrite=True)
    rows["paper's rule (--threshold 0.99:0.999)"] = str(paper)
    exports = {}
    for t in args.targets:
        out = default_compression(args.work, t, args.clips, fresh=True)
        rows[f"--target-params {t:g} (default)"] = str(out)
        exports[f"--target-params {t:g}, ONNX Runtime int8"] = liteasr.export(
            str(out), args.work / f"{out.name}-onnx-int8", quantize="int8", overwrite=True)
    rows |= {k: str(v) for k, v in exports.items()}
    rows["faster-whisper's engine: CTranslate2 int8, dense"] = "ctranslate2:tiny.en:int8"
    results = liteasr.evaluate(list(rows.values()), [str(speech / s) for s in EVAL], samples=args.eval_samples)
    for r, label in zip(results, rows):
        r["label"] = label
        r["rtfx"] = sum(d["audio_s"] for d in r["datasets"].values()) / sum(
            d["audio_s"] / d["rtfx"] for d in r["datasets"].values())
    command = "python benchmarks/tiny_en.py " + " ".join(sys.argv[1:])
    machine = f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    minutes = (time.time() - started) / 60
    write_json(args.json, {"command": command.strip(), "date": time.strftime("%Y-%m-%d"),
                           "machine": machine, "minutes": minutes,
                           "calibration": f"{args.clips} clips of {' + '.join(CALIBRATION)}",
                           "results": results})
    dense, faster = results[0], results[-1]
    lines = [f"### The default recipe on tiny.en ({time.strftime('%Y-%m-%d')}, {machine})", "",
             f"Command: `{command.strip()}` ({minutes:.0f} min; {args.json}). Calibration: "
             f"{args.clips} clips of {' + '.join(CALIBRATION)}; evaluation, greedy: "
             + ", ".join(f"{n} ({dense['datasets'][n]['n']} clips)" for n in EVAL) + ", unseen speakers. "
             "Encoder ms per 30 s window, batch 1, all models interleaved; RTFx over the whole evaluation.", "",
             "| model | enc params | " + " | ".join(f"WER {n} (Δ [95% CI])" for n in EVAL)
             + " | enc ms | vs dense | vs faster-whisper | RTFx | vs faster-whisper |",
             "|---|---:|" + "---:|" * len(EVAL) + "---:|---:|---:|---:|---:|"]
    for r in results:
        cells = []
        for n in EVAL:
            d = r["datasets"][n]
            delta = d.get("delta_wer")
            cells.append(f"{d['wer']:.2f}" + (f" ({delta['delta']:+.2f} [{delta['low']:+.2f}, {delta['high']:+.2f}])"
                                              if delta else ""))
        ms = r["encoder_ms"]["batch_1"]
        lines.append(f"| {r['label']} | {r['encoder_params'] / 1e6:.2f}M | " + " | ".join(cells)
                     + f" | {ms:.0f} | {dense['encoder_ms']['batch_1'] / ms:.2f}x"
                     f" | {faster['encoder_ms']['batch_1'] / ms:.2f}x | {r['rtfx']:.1f} | {r['rtfx'] / faster['rtfx']:.2f}x |")
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
