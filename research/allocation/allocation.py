"""Issue 5 evidence on tiny.en: rank allocation methods (and, with --studies, calibration packing,
clip counts and the anchored refit, which replaced sequential calibration).

    python research/allocation/allocation.py [--dc-tts N] [--studies] [--out benchmarks]

Calibration: vctk_p239 (seeded samples). Evaluation: dc_tts (N seeded clips) and all of ljspeech.
Writes allocation.md (tables), allocation.json and allocation.png (WER vs encoder linear parameters
and vs GFLOPs, Pareto fronts).
"""

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the benchmarks' _common
from _common import speech_or_exit  # noqa: E402

from liteasr.models import whisper
from liteasr.planning.allocate import Budget
from liteasr.data.audio import read_dataset, sample
from liteasr.calibration.calibrate import DEFAULT_PACKING, calibrate
from liteasr.checkpoint import Provenance, save_checkpoint
from liteasr.factorize.compress import compress_, measure_damage, spectra, target_plan, threshold_plan
from liteasr.planning.damage import DAMAGE_MODELS, DEFAULT_DAMAGE
from liteasr.planning.flops import encoder_cost
from liteasr.planning.plan import ThresholdRule
from liteasr.evaluation.report import evaluate_models, load_eval_sets
from liteasr.refine import refit
from liteasr.evaluation.sweep import pareto_front, plot


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dc-tts", type=int, default=60)
    ap.add_argument("--methods", nargs="+", default=list(DAMAGE_MODELS), choices=DAMAGE_MODELS)
    ap.add_argument("--targets", nargs="+", type=float, default=[0.8, 0.7, 0.6])
    ap.add_argument("--thresholds", nargs="+", default=["0.99:0.999", "0.995:0.9995", "0.999:0.9999"])
    ap.add_argument("--flop-targets", nargs="*", type=float, default=[0.85, 0.8],
                    help=f"FLOP budgets for the default damage model ({DEFAULT_DAMAGE})")
    ap.add_argument("--studies", action="store_true", help="also packing, clip counts, refit at --study-target")
    ap.add_argument("--study-target", type=float, default=0.7)
    ap.add_argument("--out", default="benchmarks")
    args = ap.parse_args()
    speech = speech_or_exit()
    t0 = time.time()
    tmp = Path(tempfile.mkdtemp())
    sets = load_eval_sets([str(speech / "dc_tts")], args.dc_tts) + load_eval_sets([str(speech / "ljspeech")])
    pool = read_dataset(speech / "vctk_p239").clips
    base = whisper.load("tiny.en")
    base_cost = encoder_cost(base.model)
    cache, tables, seconds = {}, {}, {}

    def stats_for(n, packing):
        if (n, packing) not in cache:
            clips = sample(pool, n, seed=0)
            stats = calibrate(base, clips, packing=packing)
            cache[(n, packing)] = (clips, stats, spectra(stats, progress=False))
        return cache[(n, packing)]

    def allocated(budget, damage, n=64, packing=DEFAULT_PACKING):
        clips, stats, eig = stats_for(n, packing)
        if (damage, n, packing) not in tables:
            start = time.time()
            tables[(damage, n, packing)] = measure_damage(base, stats, eig, damage, clips)
            seconds[damage] = time.time() - start
        return target_plan(base, stats, eig, budget, damage, table=tables[(damage, n, packing)])

    models = {}  # label -> (group, method, checkpoint)

    def add(group, method, label, lite, plan, clips, stats):
        path = tmp / f"m{len(models)}"
        save_checkpoint(lite, base.processor, path, Provenance("tiny.en", base_cost, f"{len(clips)} vctk clips",
                                                               plan.method, label, stats.meta["clip_hashes"]))
        models[label] = (group, method, str(path))

    clips, stats, eig = stats_for(64, DEFAULT_PACKING)
    for text in args.thresholds:
        plan = threshold_plan(base.model, stats, ThresholdRule.parse(text), eig)
        add("allocation", "threshold (paper)", f"threshold {text}", compress_(copy.deepcopy(base.model), stats, plan, eig),
            plan, clips, stats)
    for damage in args.methods:
        for t in args.targets:
            plan = allocated(Budget("params", t), damage)
            add("allocation", damage, f"{damage} params {t}", compress_(copy.deepcopy(base.model), stats, plan, eig),
                plan, clips, stats)
    for t in args.flop_targets:
        plan = allocated(Budget("flops", t), DEFAULT_DAMAGE)
        add("flops", f"{DEFAULT_DAMAGE} (FLOP target)", f"{DEFAULT_DAMAGE} flops {t}",
            compress_(copy.deepcopy(base.model), stats, plan, eig), plan, clips, stats)
    if args.studies:
        t = args.study_target
        for packing in ("pad", "pack", "mix"):
            c, s, e = stats_for(64, packing)
            plan = allocated(Budget("params", t), DEFAULT_DAMAGE, 64, packing)
            add("packing", packing, f"{DEFAULT_DAMAGE} params {t}, packing {packing}",
                compress_(copy.deepcopy(base.model), s, plan, e), plan, c, s)
        for n in (8, 16, 32, 128):
            c, s, e = stats_for(n, DEFAULT_PACKING)
            plan = allocated(Budget("params", t), DEFAULT_DAMAGE, n)
            add("clips", str(n), f"{DEFAULT_DAMAGE} params {t}, {n} clips", compress_(copy.deepcopy(base.model), s, plan, e),
                plan, c, s)
        plan = allocated(Budget("params", t), DEFAULT_DAMAGE)
        add("refit", "refit", f"{DEFAULT_DAMAGE} params {t}, anchored refit", refit(base, plan, clips), plan, clips, stats)

    labels = ["base", *models]
    results = evaluate_models(["tiny.en", *[p for _, _, p in models.values()]], sets, latency=False)
    for r, label in zip(results, labels):
        r["label"] = label
        r["group"], r["method"] = models[label][:2] if label in models else ("base", "base")
        r["linear_params_kept"] = r["encoder_linear_params"] / results[0]["encoder_linear_params"]
        r["flops_kept"] = r["encoder_gflops"] / results[0]["encoder_gflops"]
    out = Path(args.out)
    (out / "allocation.json").write_text(json.dumps({"damage_seconds": seconds, "results": results}, indent=1))
    names = list(results[0]["datasets"])
    base_avg = results[0]["average_wer"]
    lines = ["# Rank allocation on tiny.en", "",
             f"Command: `python research/allocation/allocation.py --dc-tts {args.dc_tts}{' --studies' if args.studies else ''}` "
             f"({time.time() - t0:.0f} s on this machine). Calibration: vctk_p239, 64 clips, `{DEFAULT_PACKING}` packing "
             f"unless stated; evaluation: " + ", ".join(f"{n} ({results[0]['datasets'][n]['n']} clips)" for n in names)
             + ". Damage measurement time: " + ", ".join(f"{d} {s:.0f} s" for d, s in seconds.items()) + ".", ""]
    ranked = [r for r in results if r["group"] in ("allocation", "flops", "base")]
    front = {id(r) for r, on in zip(ranked, pareto_front([(r["linear_params_kept"], r["average_wer"]) for r in ranked]))
             if on}
    for group in ("allocation", "flops", "packing", "clips", "refit"):
        if not any(r["group"] == group for r in results):
            continue
        lines += [f"## {group}", "", "| method | linear params kept | FLOPs kept | " + " | ".join(f"WER {n}" for n in names)
                  + " | avg WER | Δ avg WER | Pareto |", "|---|---:|---:|" + "---:|" * len(names) + "---:|---:|:---:|"]
        for r in results:
            if r["group"] in (group, "base"):
                lines.append(f"| {r['label']} | {r['linear_params_kept']:.3f} | {r['flops_kept']:.3f} | "
                             + " | ".join(f"{r['datasets'][n]['wer']:.2f}" for n in names)
                             + f" | {r['average_wer']:.2f} | {r['average_wer'] - base_avg:+.2f} | "
                             + ("*" if id(r) in front else "") + " |")
        lines.append("")
    (out / "allocation.md").write_text("\n".join(lines))
    plot([r for r in results if r["group"] in ("allocation", "base")], out / "allocation.png",
         title="tiny.en: WER by rank allocation method", second=(lambda r: r["encoder_gflops"], "encoder GFLOPs / 30 s"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
