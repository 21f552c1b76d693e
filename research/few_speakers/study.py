"""Does healing on few voices hurt new voices? The defaults against `--refine none`, by calibration speakers.

    python research/few_speakers/study.py [--work runs/few_speakers] [--json research/few_speakers/few_speakers.json]

For each calibration set (64 clips, seed 0, the compress defaults otherwise):
- vctk_p239 (1 speaker), cathy_arctic (1 speaker),
- vctk_p239 + cathy_arctic + dc_tts + ljspeech (4 speakers, 16 clips each),
`liteasr compress tiny.en --target-params 0.7 --refine heal` runs with the defaults otherwise (what `--refine
auto` did before this study; `--save-plan`), then the same calibration with that plan and `--refine none`
(plain PCA factors): the same ranks, unhealed. Dense tiny.en and every compression are evaluated on the multi-speaker sets
librispeech_other and speechocean_train (no speaker of either is in any calibration set), with paired
bootstrap 95% intervals of ΔWER against dense, and the healed against the unhealed (same plan).
"""

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import speech_or_exit  # noqa: E402

from liteasr import runtime  # noqa: E402
from liteasr.evaluation.bench import encoder_latency  # noqa: E402
from liteasr.evaluation.evaluate import evaluate_dataset, paired_bootstrap  # noqa: E402
from liteasr.evaluation.report import load_eval_sets  # noqa: E402
from liteasr.planning.flops import encoder_cost  # noqa: E402

CALIBRATIONS = {"vctk_p239": ["vctk_p239"], "cathy_arctic": ["cathy_arctic"],
                "4_speakers": ["vctk_p239", "cathy_arctic", "dc_tts", "ljspeech"]}
SPEAKERS = {"vctk_p239": 1, "cathy_arctic": 1, "4_speakers": 4}
EVAL = ["librispeech_other", "speechocean_train"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", type=float, default=0.7)
    p.add_argument("--clips", type=int, default=64)
    p.add_argument("--work", default="runs/few_speakers")
    p.add_argument("--json", default="research/few_speakers/few_speakers.json")
    args = p.parse_args()
    speech, work = speech_or_exit(), Path(args.work)
    models, started = ["tiny.en"], time.time()
    for name, sets in CALIBRATIONS.items():
        for refine in ("heal", "none"):
            out = work / f"{name}-{refine}"
            if not (out / "config.json").exists():
                # the unhealed model gets the healed one's rank plan: the same calibration clips give the same
                # statistics and plan, so only the refinement differs (and the damage probes run once)
                plan = work / f"{name}.plan.json"
                ranks = ["--target-params", str(args.target), "--save-plan", str(plan)] if refine == "heal" else \
                    ["--plan", str(plan)]
                command = [sys.executable, "-m", "liteasr", "compress", "tiny.en", "--calibration",
                           *[str(speech / s) for s in sets], "--calibration-samples", str(args.clips), *ranks,
                           "--refine", refine, "-o", str(out), "--overwrite"]
                print("$", " ".join(command), flush=True)
                subprocess.run(command, check=True)
            models.append(str(out))
    sets = load_eval_sets([str(speech / s) for s in EVAL])
    results, errors = [], {}
    for spec in models:
        loaded = runtime.load(spec)
        cost = encoder_cost(runtime.architecture(loaded))
        entry = {"model": spec, "encoder_params": cost.params, "encoder_gflops": cost.gflops, "datasets": {}}
        for ds in sets:
            result = evaluate_dataset(loaded, ds)
            errors[spec, ds.name] = [(t["errors"], t["words"]) for t in result.transcripts]
            entry["datasets"][ds.name] = result.summary()
            if spec != models[0]:
                entry["datasets"][ds.name]["delta_wer"] = asdict(paired_bootstrap(errors[models[0], ds.name],
                                                                                  errors[spec, ds.name]))
        results.append(entry)
        print(json.dumps({k: round(v["wer"], 2) for k, v in entry["datasets"].items()}), spec, flush=True)
    # encoder ms per 30 s window, batch 1, every model interleaved in this process (one compression per
    # calibration set has the same ranks, healed or not: the speed is the plan's)
    timings = encoder_latency([runtime.load(m) for m in models], batch_size=1, repeats=5)
    for entry, timing in zip(results, timings):
        entry["encoder_ms_batch_1"] = timing.median_ms
    comparisons = {}
    for name in CALIBRATIONS:
        healed, plain = (str(work / f"{name}-{k}") for k in ("heal", "none"))
        for ds in EVAL:
            comparisons[f"{name}/{ds}"] = {"speakers": SPEAKERS[name], "healed_minus_plain":
                                           asdict(paired_bootstrap(errors[plain, ds], errors[healed, ds]))}
    Path(args.json).write_text(json.dumps({"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
                                           "minutes": (time.time() - started) / 60, "calibrations": CALIBRATIONS,
                                           "results": results, "healed_vs_plain": comparisons}, indent=1))
    print(json.dumps(comparisons, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
