"""Split a multi-speaker manifest into two with disjoint speakers: one part to calibrate or heal on, the
other to evaluate on. The new manifests point at the original audio (nothing is copied).

    python benchmarks/speaker_split.py ../shared/data/speech/speechocean_train runs/refine [--fraction 0.5]

writes OUT/<name>_calib/manifest.jsonl and OUT/<name>_heldout/manifest.jsonl.
"""

import argparse
import json
import random
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", help="a folder holding manifest.jsonl with a speaker field")
    ap.add_argument("out")
    ap.add_argument("--fraction", type=float, default=0.5, help="share of speakers for the calibration part")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    folder = Path(args.dataset).resolve()
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines() if line.strip()]
    speakers = sorted({r["speaker"] for r in rows})
    random.Random(args.seed).shuffle(speakers)
    calib = set(speakers[:round(args.fraction * len(speakers))])
    for part, keep in (("calib", lambda s: s in calib), ("heldout", lambda s: s not in calib)):
        out = Path(args.out) / f"{folder.name}_{part}"
        out.mkdir(parents=True, exist_ok=True)
        chosen = [dict(r, audio=str(folder / r["audio"])) for r in rows if keep(r["speaker"])]
        (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chosen))
        print(f"{out}: {len(chosen)} clips, {len({r['speaker'] for r in chosen})} speakers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
