"""tiny.en at several thresholds: WER, size, FLOPs and measured speed ratios, side by side in one run.

    python research/allocation/thresholds.py [--eval-samples N] [--markdown benchmarks/RESULTS.md]

Calibrates on 64 clips of vctk_p239, evaluates on dc_tts and ljspeech from ../shared. Encoder
latency of all models is measured interleaved (base, lite1, lite2, base, ...) in this process.
"""

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the benchmarks' _common
from _common import emit, speech_or_exit  # noqa: E402

from liteasr.models import whisper
from liteasr.evaluation.bench import encoder_latency
from liteasr.evaluation.sweep import run_sweep


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--thresholds", nargs="+", default=["0.99:0.999", "0.995:0.9995", "0.999:0.9999", "0.9995:0.99995"])
    ap.add_argument("--eval-samples", type=int, default=None, help="clips per eval set (default all)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--markdown", help="append the table to this file")
    args = ap.parse_args()
    speech = speech_or_exit()
    out = Path(tempfile.mkdtemp()) / "sweep"
    t0 = time.time()
    results = run_sweep("tiny.en", str(speech / "vctk_p239"), [str(speech / "dc_tts"), str(speech / "ljspeech")],
                        args.thresholds, out, samples=64, eval_samples=args.eval_samples)
    models = [whisper.load(r["model"]).model for r in results]
    timings = encoder_latency(models, batch_size=1, repeats=args.repeats)
    base_ms = timings[0].median_ms
    names = list(results[0]["datasets"])
    rtfx = lambda r: sum(d["audio_s"] for d in r["datasets"].values()) / sum(  # noqa: E731
        d["audio_s"] / d["rtfx"] for d in r["datasets"].values())
    lines = [
        f"### tiny.en, {platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "",
        f"Command: `python research/allocation/thresholds.py{' --eval-samples ' + str(args.eval_samples) if args.eval_samples else ''}`"
        f" ({time.time() - t0:.0f} s). Calibration: 64 clips of vctk_p239; evaluation clips: "
        + ", ".join(f"{n} {results[0]['datasets'][n]['n']}" for n in names) + ".",
        "",
        "| model | enc params | GFLOPs/30 s | " + " | ".join(f"WER {n}" for n in names)
        + " | avg WER | enc ms (b1) | enc speedup | FLOP bound | RTFx | RTFx ratio |",
        "|---|---:|---:|" + "---:|" * len(names) + "---:|---:|---:|---:|---:|---:|",
    ]
    for r, t in zip(results, timings):
        lines.append(
            f"| {r['label']} | {r['encoder_params'] / 1e6:.2f}M | {r['encoder_gflops']:.2f} | "
            + " | ".join(f"{r['datasets'][n]['wer']:.2f}" for n in names)
            + f" | {r['average_wer']:.2f} | {t.median_ms:.1f} ± {t.spread_ms:.1f} | {base_ms / t.median_ms:.3f}x"
            f" | {results[0]['encoder_gflops'] / r['encoder_gflops']:.3f}x | {rtfx(r):.1f} | {rtfx(r) / rtfx(results[0]):.3f}x |")
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
