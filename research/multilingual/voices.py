"""Heard language, heard voices: how much of what Polish loses at 0.7 is the voices the calibration did not hear?

    python research/multilingual/voices.py [--sweep runs/base/sweep] [--target 0.7] [--samples 40]
        [--json research/multilingual/voices.json]

benchmarks/base.py calibrates on nemo_pl_calib of speakers IC0 and KS0 (their acted emotions other than neutral)
and evaluates Polish on nemo_pl of MK0 and SM0 (neutral): a heard language, unheard voices. nemo_pl's neutral
clips of IC0 and KS0 themselves are in no calibration (the calibration holds none of their neutral clips), and
every speaker of nemo_pl reads the same sentences. So dense base and base.py's model at --target on the neutral
clips of the calibration's two speakers and of the other two, --samples clips each (seed 0), tell apart what
the voices cost from what the language costs: WER, ΔWER vs dense base with paired-bootstrap 95% intervals.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import (POLISH_CALIB_SPEAKERS, add_base_study_args, base_sweep_point, multilingual_splits,  # noqa: E402
                     rows, speech_or_exit, write_manifest)

from liteasr.evaluation.report import evaluate_models, load_eval_sets  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_base_study_args(p)
    p.add_argument("--json", type=Path, default=Path("research/multilingual/voices.json"))
    args = p.parse_args()
    speech, started = speech_or_exit(), time.time()
    split = multilingual_splits(speech, args.work)
    model = base_sweep_point(args.sweep, args.target, "voices.py")
    heard = [r for r in rows(speech / "nemo_pl") if r["speaker"] in POLISH_CALIB_SPEAKERS]
    heard_voices = write_manifest(heard, args.work / "nemo_pl_calibration_voices", speech / "nemo_pl")
    sets = [str(split["nemo_pl_heldout"]), str(heard_voices)]
    results = evaluate_models(["base", str(model)], load_eval_sets(sets, args.samples, seed=0), latency=False)
    for r in results:
        print(r["model"], {name: round(d["wer"], 2) for name, d in r["datasets"].items()},
              {name: d.get("delta_wer") for name, d in r["datasets"].items()})
    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv), "sets": sets,
               "samples": args.samples, "results": results, "minutes": (time.time() - started) / 60}
    args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
