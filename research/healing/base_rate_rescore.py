"""base_rate.md's chosen rate (3e-5) against the product's (1e-4) again, on benchmarks/base.py's current sweep and
with eval's English scoring of 2026-12-05, greedy and with `transcribe`'s defaults, paired clip by clip.

    python research/healing/base_rate.py --variants lr=3e-5 --json runs/base/rate.json   # 14 min: the model
    python research/healing/base_rate_rescore.py [--json research/healing/base_rate_rescored.json]

base_rate.md (2026-12-03) found 3e-5 a trade: unheard languages -2.0 to -4.5 WER, heard English on speechocean
+4.40 [+0.00, +10.00]; that speechocean was decoded in the detected language and scored before eval spelled
written digits out. Here: dense base, benchmarks/base.py's 0.7 model (healed at 1e-4) and the same factors
healed at 3e-5 (base_rate.py on that sweep), on base.py's six sets (40 clips, seed 0, each set's language
forced), each model's ΔWER against dense base and 3e-5 minus 1e-4, paired-bootstrap 95% intervals.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import (add_base_study_args, base_eval_sets, base_sweep_point, multilingual_splits,  # noqa: E402
                     speech_or_exit, write_json)

from liteasr.decoding.transcribe import DecodingOptions  # noqa: E402
from liteasr import runtime  # noqa: E402
from liteasr.evaluation.evaluate import evaluate_dataset, paired_bootstrap, pooled_wer  # noqa: E402
from liteasr.evaluation.report import load_eval_sets  # noqa: E402

DECODINGS = {"greedy": DecodingOptions(), "transcribe's defaults": DecodingOptions.like_faster_whisper()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_base_study_args(p)
    p.add_argument("--variant", type=Path, default=Path("runs/base/rate/lr=3e-5"), help="base_rate.py's model")
    p.add_argument("--json", type=Path, default=Path("research/healing/base_rate_rescored.json"))
    args = p.parse_args()
    speech, started = speech_or_exit(), time.time()
    product = base_sweep_point(args.sweep, args.target, "base_rate_rescore.py")
    if not (args.variant / "config.json").is_file():
        sys.exit(f"base_rate_rescore.py: {args.variant} has no model: run base_rate.py --variants lr=3e-5 first")
    models = {"dense base": "base", "1e-4 (product)": str(product), "3e-5": str(args.variant)}
    sets = load_eval_sets(base_eval_sets(speech, multilingual_splits(speech, args.work)), args.samples, seed=0)
    loaded = {label: runtime.load(spec) for label, spec in models.items()}
    out = {}
    for decoding, options in DECODINGS.items():
        errors = {label: {ds.name: [(t["errors"], t["words"]) for t in
                                    evaluate_dataset(m, ds, progress=False, options=options).transcripts] for ds in sets}
                  for label, m in loaded.items()}
        out[decoding] = {}
        for ds in sets:
            row = {label: {"wer": pooled_wer(errors[label][ds.name])} for label in models}
            for label, against in (("1e-4 (product)", "dense base"), ("3e-5", "dense base"), ("3e-5", "1e-4 (product)")):
                d = paired_bootstrap(errors[against][ds.name], errors[label][ds.name])
                row[label][f"minus {against}"] = {"delta": d.delta, "low": d.low, "high": d.high}
            out[decoding][ds.name] = row
            cells = "  ".join(f"{label} {row[label]['wer']:.2f}" for label in models)
            m = row["3e-5"]["minus 1e-4 (product)"]
            print(f"{decoding:22} {ds.name:20} {cells}  3e-5 - 1e-4 {m['delta']:+.2f} [{m['low']:+.2f}, {m['high']:+.2f}]",
                  flush=True)
    write_json(args.json, {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
                           "models": models, "samples": args.samples, "results": out,
                           "minutes": (time.time() - started) / 60})
    return 0


if __name__ == "__main__":
    sys.exit(main())
