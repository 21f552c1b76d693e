"""How to heal base: the learning rate, its warmup and schedule for factor healing at base's size.

    python research/healing/base_rate.py [--sweep runs/base/sweep] [--target 0.7]
        [--variants lr=1e-4 lr=3e-5 lr=1e-4,warmup=25 lr=1e-4,warmup=25,schedule=cosine]
        [--evaluate VARIANT] [--samples 40] [--json research/healing/base_rate.json]

benchmarks/base.py's compression at --target (its calibration statistics, its rank plan, its 256 calibration
clips: English and Polish) is factored once; each variant (VariantConfig fields, `key=value,...`; the others
the product's defaults, 150 steps of 4 windows) heals a copy of the same factors on the same clips, with the
same held-out clips, and the held-out loss is recorded at every check. Choosing uses the held-out calibration loss
only. `--evaluate VARIANT` then evaluates that variant's model once, beside dense base and the benchmark's
healed model, on benchmarks/base.py's evaluation sets (speakers disjoint from the calibration's; Italian,
German and Spanish never calibrated): WER, ΔWER vs dense base with paired-bootstrap 95% intervals.
Models go to --work/rate/<variant>.
"""

import argparse
import copy
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `research.*`
from _common import (add_base_study_args, base_calibration, base_sweep_point, multilingual_splits,  # noqa: E402
                     speech_or_exit)

from liteasr.calibration.stats import CovarianceStats  # noqa: E402
from liteasr.data.audio import draw, read_sources  # noqa: E402
from liteasr.evaluation.report import evaluate_models, load_eval_sets  # noqa: E402
from liteasr.factorize.compress import spectra  # noqa: E402
from liteasr.models import whisper  # noqa: E402
from liteasr.pipeline import CompressConfig, Planned, build  # noqa: E402
from liteasr.planning.plan import RankPlan  # noqa: E402
from research.healing.variants import VariantConfig, heal_variant  # noqa: E402

DEFAULT_VARIANTS = ["lr=1e-4", "lr=3e-5", "lr=1e-4,warmup=25", "lr=1e-4,warmup=25,schedule=cosine"]


def heal_config(spec: str) -> VariantConfig:
    """`lr=3e-5,warmup=25` -> VariantConfig(lr=3e-5, warmup=25), no wall-clock budget (steps decide). With
    only HealConfig's fields it is the product's healing (research/healing/test_variants.py)."""
    types = {f.name: f.type for f in fields(VariantConfig)}
    kwargs = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        if key not in types:
            sys.exit(f"base_rate.py: {key!r} is not a VariantConfig field")
        kwargs[key] = value if key == "schedule" else (int(value) if types[key] in ("int", int) else float(value))
    return VariantConfig(minutes=None, **kwargs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_base_study_args(p)
    p.add_argument("--variants", nargs="*", default=DEFAULT_VARIANTS)
    p.add_argument("--evaluate", metavar="VARIANT", help="evaluate this variant's model (built by an earlier run)")
    p.add_argument("--json", type=Path, default=Path("research/healing/base_rate.json"))
    args = p.parse_args()
    speech = speech_or_exit()
    healed_dir = base_sweep_point(args.sweep, args.target, "base_rate.py")
    out = json.loads(args.json.read_text()) if args.json.is_file() else {"variants": {}}
    out.update(target=args.target, sweep=str(args.sweep))
    split = multilingual_splits(speech, args.work)
    if args.variants:
        dense = whisper.load("base")
        calibration = base_calibration(speech, split)
        clips = draw(read_sources(calibration, "audio", "text"), args.clips, 0)  # run_sweep's draw
        stats = CovarianceStats.load(args.sweep / "stats.safetensors")
        planned = Planned(dense, stats, spectra(stats), RankPlan.load(healed_dir / "plan.json"), clips,
                          f"{len(clips)} clips of {' + '.join(calibration)}")
        for spec in args.variants:
            config = heal_config(spec)
            lite = build(planned, CompressConfig(plan=planned.plan), "none", keep_dense=True)
            lite.plan = copy.deepcopy(planned.plan)  # its method names this variant's healing
            checks = []
            report = heal_variant(dense, lite.model, clips, config,
                                  on_check=lambda step, loss: checks.append([step, loss]))
            print(f"{spec}: {report.summary()}; checks {checks}", flush=True)
            lite.plan.method += f", healed ({spec}, {report.steps} steps)"
            lite.save(args.work / "rate" / spec, overwrite=True, command="python " + " ".join(sys.argv))
            out["variants"][spec] = {"held_out": list(report.e2e_loss), "steps": report.steps,
                                     "minutes": report.seconds / 60, "checks": checks,
                                     "command": "python " + " ".join(sys.argv)}
            args.json.write_text(json.dumps(out, indent=1))
    if args.evaluate:
        english = [str(speech / "librispeech_other"), str(split["speechocean_heldout"])]
        sets = [*english, str(split["nemo_pl_heldout"]), str(speech / "emovo_it"), str(speech / "emodb_de"),
                str(speech / "css10_es")]
        models = ["base", str(healed_dir), str(args.work / "rate" / args.evaluate)]
        out["evaluation"] = {"command": "python " + " ".join(sys.argv), "variant": args.evaluate, "models": models,
                             "sets": sets, "samples": args.samples,
                             "results": evaluate_models(models, load_eval_sets(sets, args.samples, seed=0),
                                                        latency=False)}
    out.update(date=time.strftime("%Y-%m-%d"))  # each entry carries its own command
    args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
