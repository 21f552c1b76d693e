"""Damage probes of every calibration language: base at 0.7, its ranks measured on English only vs on each
language alike.

    python research/multilingual/probes.py [--sweep runs/base/sweep] [--target 0.7] [--samples 40]
        [--out runs/multilingual/base-0.7-probes] [--json research/multilingual/probes.json]

benchmarks/base.py's calibration (256 clips drawn from librispeech_calib, half of speechocean_train's speakers
and nemo_pl_calib of two speakers, one source after another) and its statistics (`--sweep`). Its `encoder`
damage allocation probed the first 8 clips: all librispeech_calib, English only. `compress` now takes the
probes from each stated language in turn (`factorize.probe_selection`: here 4 unstated, i.e. English, and 4
Polish). This measures the damage table again with those probes, allocates --target, builds the product's
model from it (PCA factors healed on the calibration, the same budget) and compares it with base.py's model:
- ranks: what moved between the two plans;
- no decoding: the relative encoder-output error of both plans' PCA factors against dense base on 24 clips per
  probe set (speakers no calibration holds), as research/multilingual/where.py measures it;
- WER: dense base, base.py's model and the new one on base.py's sets (--samples clips, seed 0, each set's
  language forced), ΔWER against dense and new against old, paired-bootstrap 95% intervals.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import (add_base_study_args, base_calibration, base_eval_sets, base_sweep_point,  # noqa: E402
                     multilingual_splits, speech_or_exit)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from subspace import probe_sets  # noqa: E402
from where import errors_on  # noqa: E402

from liteasr.calibration.stats import CovarianceStats  # noqa: E402
from liteasr.data.audio import draw, read_sources  # noqa: E402
from liteasr.evaluation.evaluate import evaluate_dataset, paired_bootstrap  # noqa: E402
from liteasr.evaluation.report import load_eval_sets  # noqa: E402
from liteasr.factorize.compress import measure_damage, probe_selection, spectra, target_plan  # noqa: E402
from liteasr.models import whisper  # noqa: E402
from liteasr.pipeline import CompressConfig, Planned, build, compress  # noqa: E402
from liteasr.planning.allocate import Budget  # noqa: E402
from liteasr.planning.plan import RankPlan  # noqa: E402
from liteasr import runtime  # noqa: E402

from dataclasses import asdict  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_base_study_args(p)
    p.add_argument("--probe-clips", type=int, default=24, help="clips per probe set for the encoder-output error")
    p.add_argument("--out", type=Path, default=Path("runs/multilingual/base-0.7-probes"))
    p.add_argument("--json", type=Path, default=Path("research/multilingual/probes.json"))
    args = p.parse_args()
    speech, started = speech_or_exit(), time.time()
    split = multilingual_splits(speech, args.work)
    old_dir = base_sweep_point(args.sweep, args.target, "probes.py")
    calibration = base_calibration(speech, split)
    clips = draw(read_sources(calibration), args.clips, seed=0)
    stats = CovarianceStats.load(args.sweep / "stats.safetensors")
    if stats.meta.get("clips") not in (None, len(clips)):
        raise SystemExit(f"{args.sweep}: statistics of {stats.meta.get('clips')} clips, not {len(clips)}")
    dense = whisper.load("base")
    eig = spectra(stats)
    old_probes = [c.language or "unstated" for c in clips[:8]]
    new_probes = [c.language or "unstated" for c in probe_selection(clips, 8)]
    print(f"probes: before {old_probes}; now {new_probes}")

    old_plan = RankPlan.load(old_dir / "plan.json")
    if not (args.out / "config.json").is_file():
        t0 = time.time()
        table = measure_damage(dense, stats, eig, "encoder", clips)
        plan = target_plan(dense, stats, eig, Budget("params", args.target), "encoder", table=table)
        probe_minutes = (time.time() - t0) / 60
        plan.method = f"encoder allocation, params {args.target}, probes of every language"
        lite = build(Planned(dense, stats, eig, plan, clips, f"{len(clips)} clips of {' + '.join(calibration)} (seed 0)"),
                     CompressConfig(), "heal",
                     keep_dense=True)
        lite.save(args.out, overwrite=True, command="python " + " ".join(sys.argv))
        lite.plan.save(args.out / "plan.json")
        (args.out / "probe_minutes.txt").write_text(f"{probe_minutes:.1f}\n")
    new_plan = RankPlan.load(args.out / "plan.json")
    moved = {k: (old_plan.layers[k].rank, new_plan.layers[k].rank) for k in old_plan.layers
             if old_plan.layers[k].rank != new_plan.layers[k].rank}
    print(f"ranks moved in {len(moved)} of {len(old_plan.layers)} projections")

    # encoder-output error of both plans' PCA factors (no healing), per probe language
    pca = {name: compress(dense, stats, CompressConfig(plan=plan, refine="none")).model
           for name, plan in (("English probes", old_plan), ("every language's probes", new_plan))}
    errors = errors_on(dense, pca, probe_sets(speech, split), args.probe_clips)
    del pca

    # WER: dense, base.py's model, the new one, on base.py's sets
    sets_paths = base_eval_sets(speech, split)
    sets = load_eval_sets(sets_paths, args.samples, seed=0)
    models = {"base": "base", "English probes (benchmarks/base.py)": str(old_dir),
              "every language's probes": str(args.out)}
    per_set: dict = {ds.name: {} for ds in sets}
    for label, spec in models.items():
        loaded = dense if spec == "base" else runtime.load(spec)
        for ds in sets:
            result = evaluate_dataset(loaded, ds, progress=True)
            per_set[ds.name][label] = (result.wer, [(t["errors"], t["words"]) for t in result.transcripts])
    wer = {}
    for name, got in per_set.items():
        base_errors = got["base"][1]
        old = got["English probes (benchmarks/base.py)"][1]
        wer[name] = {label: {"wer": w, **({} if label == "base" else
                                          {"delta_vs_dense": asdict(paired_bootstrap(base_errors, e))})}
                     for label, (w, e) in got.items()}
        wer[name]["every language's probes"]["delta_vs_english_probes"] = asdict(
            paired_bootstrap(old, got["every language's probes"][1]))
        print(name, {k: round(v["wer"], 2) for k, v in wer[name].items()})

    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
               "calibration": calibration, "clips": len(clips), "target": args.target,
               "probes": {"before": old_probes, "now": new_probes},
               "probe_minutes": float((args.out / "probe_minutes.txt").read_text()),
               "method": new_plan.method,
               "ranks_moved": moved, "encoder_error": errors, "wer": wer, "samples": args.samples,
               "minutes": (time.time() - started) / 60}
    args.json.write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
