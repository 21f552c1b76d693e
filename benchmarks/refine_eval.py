"""Paired comparison of the checkpoints benchmarks/refine.py wrote: every model against dense tiny.en
and the corrections against plain PCA, ΔWER with 95% paired-bootstrap intervals.

    python benchmarks/refine_eval.py [--work runs/refine] [--target 0.7] [--samples 50]
"""

import argparse
import json
import time
from pathlib import Path

from _common import speech_or_exit

from liteasr import whisper
from liteasr.evaluate import evaluate_dataset, paired_bootstrap
from liteasr.report import load_eval_sets


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="runs/refine")
    ap.add_argument("--target", default="0.7")
    ap.add_argument("--samples", type=int, default=50, help="seeded clips per evaluation set")
    args = ap.parse_args()
    speech = speech_or_exit()
    work = Path(args.work)
    sets = load_eval_sets([str(speech / "librispeech_other")], args.samples, seed=0) + load_eval_sets(
        [str(speech / "speechocean_train")], args.samples, seed=0)
    models = [("dense tiny.en", "tiny.en")] + [(f"{m} {args.target}", str(work / f"{m}-{args.target}"))
                                              for m in ("pca", "refit", "pcaheal") if (work / f"{m}-{args.target}").is_dir()]
    errors, t0 = {}, time.time()
    for label, spec in models:
        loaded = whisper.load(spec)
        for ds in sets:
            r = evaluate_dataset(loaded, ds, progress=False)
            errors[label, ds.name] = (r.wer, [(t["errors"], t["words"]) for t in r.transcripts])
            print(f"{label} {ds.name} WER {r.wer:.2f} ({time.time() - t0:.0f} s)", flush=True)
    pca = f"pca {args.target}"
    lines = ["| set | model | WER | ΔWER vs dense [95% CI] | ΔWER vs PCA [95% CI] |", "|---|---|---:|---|---|"]
    for ds in sets:
        for label, _ in models:
            wer, e = errors[label, ds.name]
            cells = []
            for ref in ("dense tiny.en", pca):
                if label == ref or (ref, ds.name) not in errors or (ref == pca and label == "dense tiny.en"):
                    cells.append("")
                    continue
                d = paired_bootstrap(errors[ref, ds.name][1], e)
                cells.append(f"{d.delta:+.2f} [{d.low:+.2f}, {d.high:+.2f}]")
            lines.append(f"| {ds.name} ({len(ds.clips)}) | {label} | {wer:.2f} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    (work / f"eval-{args.target}.json").write_text(json.dumps({f"{k[0]}|{k[1]}": v for k, v in errors.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
