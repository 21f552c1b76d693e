"""Split a multi-speaker manifest into two with disjoint speakers: one part to calibrate or heal on, the
other to evaluate on. The new manifests point at the original audio (nothing is copied).

    python research/healing/speaker_split.py ../shared/data/speech/speechocean_train runs/refine [--fraction 0.5]
        [--by utterance]

writes OUT/<name>_calib/manifest.jsonl and OUT/<name>_heldout/manifest.jsonl. `--by utterance` splits each
speaker's utterances instead (every speaker in both parts, no utterance in both): healing on one part
then tells how far adapting to known voices carries to their other utterances.
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
    ap.add_argument("--by", choices=("speaker", "utterance"), default="speaker")
    args = ap.parse_args()
    folder = Path(args.dataset).resolve()
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines() if line.strip()]
    rng = random.Random(args.seed)
    if args.by == "speaker":
        speakers = sorted({r["speaker"] for r in rows})
        rng.shuffle(speakers)
        calib = set(speakers[:round(args.fraction * len(speakers))])
        in_calib = [r["speaker"] in calib for r in rows]
    else:
        in_calib = [False] * len(rows)
        for speaker in sorted({r["speaker"] for r in rows}):
            own = [i for i, r in enumerate(rows) if r["speaker"] == speaker]
            rng.shuffle(own)
            for i in own[:round(args.fraction * len(own))]:
                in_calib[i] = True
    for part, wanted in (("calib", True), ("heldout", False)):
        out = Path(args.out) / f"{folder.name}_{part}"
        out.mkdir(parents=True, exist_ok=True)
        chosen = [dict(r, audio=str(folder / r["audio"])) for r, c in zip(rows, in_calib) if c == wanted]
        (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chosen))
        print(f"{out}: {len(chosen)} clips, {len({r['speaker'] for r in chosen})} speakers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
