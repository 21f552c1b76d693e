"""Encoder speed vs the FLOP bound, measured side by side in one process (interleaved runs).

    python benchmarks/speed.py [--stats stats.safetensors] [--skip-large] [--json benchmarks/speed.json]
        [--markdown benchmarks/RESULTS.md]

1. tiny.en at several compression points (real weights, calibrated on vctk_p239): measured encoder
   speedup vs base, FLOP bound, fraction of the bound; standard vs reduced-dimension attention.
2. The same tiny.en windows through CTranslate2's encoder (fp32 and int8) on this CPU.
3. large-v3 shapes with random weights at lite-whisper-large-v3-like ranks (CPU, batch 1, 3 runs).
"""

import argparse
import copy
import platform
import sys
import time

import numpy as np
import torch
from _common import emit, large_v3_shapes, speech_or_exit, write_json
from transformers import WhisperForConditionalGeneration

from liteasr.models import whisper
from liteasr.data.audio import read_dataset, sample
from liteasr.evaluation.bench import encoder_latency
from liteasr.calibration.calibrate import calibrate
from liteasr.factorize.compress import compress_, spectra, threshold_plan
from liteasr.planning.flops import encoder_cost
from liteasr.models.hf.modeling_lite_whisper import LiteWhisperForConditionalGeneration, set_attention_modes
from liteasr.planning.plan import LayerRank, RankPlan, ThresholdRule
from liteasr.models.sources import offline_copy
from liteasr.calibration.stats import CovarianceStats

def row(label, t, base_ms, bound, rows: list):
    speedup = base_ms / t.median_ms
    rows.append({"model": label, "ms": t.median_ms, "spread_ms": t.spread_ms, "speedup": speedup, "flop_bound": bound})
    return f"| {label} | {t.median_ms:.1f} ± {t.spread_ms:.1f} | {speedup:.3f}x | {bound:.3f}x | {speedup / bound:.0%} |"


def with_modes(model, scores, values):
    m = copy.deepcopy(model)
    set_attention_modes(m.model.encoder.layers, [{"scores": scores, "values": values}] * len(m.model.encoder.layers))
    return m


def tiny_en_section(speech, stats_path, repeats, rows: list):
    base = whisper.load("tiny.en")
    if stats_path:
        stats = CovarianceStats.load(stats_path)
    else:
        clips = sample(read_dataset(speech / "vctk_p239").clips, 64, seed=0)
        stats = calibrate(base, clips)
    eig = spectra(stats, progress=False)
    points = {}
    for text in ("0.999:0.9999", "0.995:0.9995", "0.99:0.999"):
        m = copy.deepcopy(base.model)
        points[f"threshold {text}"] = compress_(m, stats, threshold_plan(m, stats, ThresholdRule.parse(text), eig), eig)
    # A low-rank point below the head dimension, where attention in reduced dimension pays off.
    low = {"q_proj": 48, "k_proj": 48, "v_proj": 48, "out_proj": 96, "fc1": 256, "fc2": 256}
    m = copy.deepcopy(base.model)
    plan = RankPlan({k: LayerRank(low[whisper.split_key(k)[1]], v.in_features, v.out_features, 0, "fixed")
                     for k, v in whisper.encoder_linears(m).items()}, "fixed ranks")
    lite_low = compress_(m, stats, plan, eig)
    points["ranks q/k/v 48 (reduced attention)"] = lite_low
    points["ranks q/k/v 48 (standard attention)"] = with_modes(lite_low, False, False)
    models = [base.model, *points.values()]
    timings = encoder_latency(models, batch_size=1, repeats=repeats)
    base_ms, base_flops = timings[0].median_ms, encoder_cost(base.model).flops
    lines = ["| model | enc ms / 30 s (b1) | speedup | FLOP bound | fraction of bound |", "|---|---:|---:|---:|---:|",
             row("tiny.en (HF, fp32)", timings[0], base_ms, 1.0, rows)]
    for (label, model), t in zip(points.items(), timings[1:]):
        lines.append(row(label, t, base_ms, base_flops / encoder_cost(model).flops, rows))
    return lines, base, points["threshold 0.999:0.9999"]


def ctranslate2_section(base, lite, repeats, rows: list):
    try:
        import ctranslate2
    except ImportError:
        return ["(ctranslate2 not installed)"]
    feats = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(0))
    sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy()))
    runners = {"HF tiny.en fp32": lambda: base.model.model.encoder(feats),
               "liteasr tiny.en threshold 0.999:0.9999 fp32": lambda: lite.model.encoder(feats)}
    for ct in ("float32", "int8"):
        model = ctranslate2.models.Whisper(str(offline_copy("tiny.en")), device="cpu", compute_type=ct,
                                           intra_threads=torch.get_num_threads())
        runners[f"CTranslate2 tiny.en {ct}"] = (lambda m=model: m.encode(sv, to_cpu=True))
    samples = {k: [] for k in runners}
    with torch.inference_mode():
        for it in range(repeats + 2):
            for k, fn in runners.items():
                time.sleep(0.3)  # let the previous engine's OpenMP threads stop spinning
                t0 = time.perf_counter()
                fn()
                if it >= 2:
                    samples[k].append(time.perf_counter() - t0)
    ref = float(np.median(samples["CTranslate2 tiny.en float32"]))
    lines = ["| encoder | ms / 30 s (b1) | vs CTranslate2 fp32 |", "|---|---:|---:|"]
    for k, s in samples.items():
        rows.append({"encoder": k, "ms": float(np.median(s)) * 1e3, "vs_ctranslate2_fp32": ref / float(np.median(s))})
        lines.append(f"| {k} | {np.median(s) * 1e3:.1f} | {ref / np.median(s):.3f}x |")
    return lines


def large_v3_section(repeats, rows: list):
    torch.manual_seed(0)
    dense_config, lite_config = large_v3_shapes()
    base = WhisperForConditionalGeneration(dense_config).eval()
    lite = LiteWhisperForConditionalGeneration(lite_config).eval()
    from liteasr.planning.flops import best_attention_modes

    set_attention_modes(lite.model.encoder.layers, best_attention_modes(lite))
    std = with_modes(lite, False, False)
    timings = encoder_latency([base, lite, std], batch_size=1, repeats=repeats, warmup=1)
    bf = encoder_cost(base).flops
    return ["| model | enc ms / 30 s (b1) | speedup | FLOP bound | fraction of bound |", "|---|---:|---:|---:|---:|",
            row("large-v3 shapes, dense", timings[0], timings[0].median_ms, 1.0, rows),
            row("lite ranks, attention auto (reduced where cheaper)", timings[1], timings[0].median_ms,
                bf / encoder_cost(lite).flops, rows),
            row("lite ranks, standard attention", timings[2], timings[0].median_ms, bf / encoder_cost(std).flops, rows)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stats", help="reuse tiny.en calibration statistics")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--json", default="benchmarks/speed.json")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    speech = speech_or_exit()
    t0 = time.time()
    machine = f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    rows = {"tiny_en": [], "ctranslate2": [], "large_v3_shapes": []}
    lines = [f"### Encoder speed ({time.strftime('%Y-%m-%d')}, {machine}; JSON: {args.json})",
             "", "tiny.en (real weights, calibrated on 64 vctk_p239 clips), batch 1, "
             f"{args.repeats} interleaved runs after warm-up:", ""]
    tiny_lines, base, lite = tiny_en_section(speech, args.stats, args.repeats, rows["tiny_en"])
    lines += tiny_lines + ["", "Same random 30 s window through each encoder, interleaved:", ""]
    lines += ctranslate2_section(base, lite, args.repeats, rows["ctranslate2"])
    if not args.skip_large:
        lines += ["", "large-v3 shapes (random weights; ranks of layers 0-3 of lite-whisper-large-v3 repeated over "
                  "32 layers), batch 1, 3 interleaved runs:", ""]
        lines += large_v3_section(3, rows["large_v3_shapes"])
    command = "python benchmarks/speed.py " + " ".join(sys.argv[1:])
    lines += ["", f"Command: `{command.strip()}` ({time.time() - t0:.0f} s)."]
    write_json(args.json, {"command": command.strip(), "date": time.strftime("%Y-%m-%d"),
                           "machine": machine, "seconds": time.time() - t0, **rows})
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
