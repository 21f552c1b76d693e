"""Issue 5 evidence on tiny.en: allocation methods, calibration packing, clip counts, sequential calibration.

    python benchmarks/allocation.py [--dc-tts N] [--out benchmarks]

Calibration: vctk_p239 (seeded samples). Evaluation: dc_tts (N seeded clips) and all of ljspeech.
Writes allocation.md (tables) and allocation.png (WER vs encoder linear parameters, Pareto fronts).
"""

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import speech_or_exit

from liteasr import whisper
from liteasr.allocate import Budget
from liteasr.audio import read_dataset, sample
from liteasr.calibrate import calibrate
from liteasr.checkpoint import Provenance, save_checkpoint
from liteasr.compress import compress_, spectra, target_plan, threshold_plan
from liteasr.flops import encoder_cost
from liteasr.plan import ThresholdRule
from liteasr.report import evaluate_models, load_eval_sets
from liteasr.sequential import compress_sequential
from liteasr.sweep import plot


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dc-tts", type=int, default=60)
    ap.add_argument("--targets", nargs="+", type=float, default=[0.85, 0.75, 0.7])
    ap.add_argument("--study-target", type=float, default=0.75)
    ap.add_argument("--out", default="benchmarks")
    args = ap.parse_args()
    speech = speech_or_exit()
    t0 = time.time()
    tmp = Path(tempfile.mkdtemp())
    sets = load_eval_sets([str(speech / "dc_tts")], args.dc_tts) + load_eval_sets([str(speech / "ljspeech")])
    pool = read_dataset(speech / "vctk_p239").clips
    base = whisper.load("tiny.en")
    base_cost = encoder_cost(base.model)
    cache = {}

    def stats_for(n, packing):
        if (n, packing) not in cache:
            clips = sample(pool, n, seed=0)
            stats = calibrate(base, clips, packing=packing)
            cache[(n, packing)] = (clips, stats, spectra(stats, progress=False))
        return cache[(n, packing)]

    models = {}  # label -> (group, checkpoint)

    def add(group, label, lite, plan, clips, stats):
        path = tmp / f"m{len(models)}"
        save_checkpoint(lite, base.processor, path, Provenance("tiny.en", base_cost, f"{len(clips)} vctk clips",
                                                               plan.method, label, stats.meta["clip_hashes"]))
        models[label] = (group, str(path))

    clips, stats, eig = stats_for(64, "pad")
    for text in ("0.99:0.999", "0.995:0.9995", "0.999:0.9999"):
        plan = threshold_plan(base.model, stats, ThresholdRule.parse(text), eig)
        add("allocation", f"threshold {text}", compress_(copy.deepcopy(base.model), stats, plan, eig), plan, clips, stats)
    plans = {}
    for damage in ("variance", "normalized", "sensitivity"):
        for t in args.targets:
            plan = target_plan(base, stats, eig, Budget("params", t), damage, clips)
            plans[(damage, t)] = plan
            add("allocation", f"{damage} params {t}", compress_(copy.deepcopy(base.model), stats, plan, eig), plan,
                clips, stats)
    t = args.study_target
    for packing in ("pack", "mix"):
        c, s, e = stats_for(64, packing)
        plan = target_plan(base, s, e, Budget("params", t), "sensitivity", c)
        add("packing", f"sensitivity params {t}, packing {packing}", compress_(copy.deepcopy(base.model), s, plan, e),
            plan, c, s)
    for n in (8, 16, 32, 128):
        c, s, e = stats_for(n, "pad")
        plan = target_plan(base, s, e, Budget("params", t), "sensitivity", c)
        add("clips", f"sensitivity params {t}, {n} clips", compress_(copy.deepcopy(base.model), s, plan, e), plan, c, s)
    lite, seq_stats = compress_sequential(base, clips, plans[("sensitivity", t)])
    add("sequential", f"sensitivity params {t}, sequential", lite, plans[("sensitivity", t)], clips, seq_stats)

    labels = ["base", *models]
    results = evaluate_models(["tiny.en", *[p for _, p in models.values()]], sets, latency=False)
    for r, label in zip(results, labels):
        r["label"] = label
        r["group"] = models[label][0] if label in models else "base"
        r["linear_params_kept"] = r["encoder_linear_params"] / results[0]["encoder_linear_params"]
        r["flops_kept"] = r["encoder_gflops"] / results[0]["encoder_gflops"]
    out = Path(args.out)
    (out / "allocation.json").write_text(json.dumps(results, indent=1))
    names = list(results[0]["datasets"])
    lines = ["# Rank allocation on tiny.en", "",
             f"Command: `python benchmarks/allocation.py --dc-tts {args.dc_tts}` ({time.time() - t0:.0f} s). "
             f"Calibration: vctk_p239 (64 clips unless stated, padded windows unless stated); evaluation: "
             + ", ".join(f"{n} ({results[0]['datasets'][n]['n']} clips)" for n in names) + ".", ""]
    for group in ("allocation", "packing", "clips", "sequential"):
        lines += [f"## {group}", "", "| method | linear params kept | FLOPs kept | " + " | ".join(f"WER {n}" for n in names)
                  + " | avg WER | Δ avg WER |", "|---|---:|---:|" + "---:|" * len(names) + "---:|---:|"]
        for r in results:
            if r["group"] in (group, "base"):
                lines.append(f"| {r['label']} | {r['linear_params_kept']:.3f} | {r['flops_kept']:.3f} | "
                             + " | ".join(f"{r['datasets'][n]['wer']:.2f}" for n in names)
                             + f" | {r['average_wer']:.2f} | {r['average_wer'] - results[0]['average_wer']:+.2f} |")
        lines.append("")
    (out / "allocation.md").write_text("\n".join(lines))
    plot([r for r in results if r["group"] in ("allocation", "base")], out / "allocation.png",
         title="tiny.en: WER by rank allocation method", second=(lambda r: r["encoder_gflops"], "encoder GFLOPs / 30 s"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
