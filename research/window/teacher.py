"""Which teacher to heal a compressed model for the short window against: dense tiny.en on its padded window
(the product's, as issue 37 specifies) or the compressed model itself on its padded window.

    python research/window/teacher.py [--samples 80] [--work runs/window] [--json research/window/teacher.json]

The window goal compares a compressed model on its short window with the *same compression* padded. Against
the dense teacher, the healing's loss holds the compression's own error too (0.7: held-out 0.3425 -> 0.1407,
dense tiny.en 0.3165 -> 0.0698; benchmarks/window.json), and the 1000 steps spend part of their effort on it.
Against itself, the loss is the window's error alone. benchmarks/window.py's 0.7 model (runs/window/tiny.en-0.7)
is healed both ways with refine.WINDOW_HEAL on the same audio (librispeech_calib + half of speechocean's
speakers, 256 clips, seed 0) for windows of the audio + 1 s, floor 5 s, and evaluated on the development draws
of research/window/steps.py (seed 0, --samples clips per set; benchmarks/window.py reports on seed-1 draws),
greedy: WER, ΔWER against the 0.7 model padded (paired bootstrap), runaways.

Needs runs/window/tiny.en-0.7 and its dense-teacher window model as benchmarks/window.py builds them; the
self-teacher model is built here (about 27 min on 2 cores) and reused when present. Result: research/window/margin.md.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _study import start_study, development_sets, heal_lite_for_window  # noqa: E402

from liteasr.data.audio import draw, read_sources  # noqa: E402
from liteasr.decoding.transcribe import DecodingOptions  # noqa: E402
from liteasr.evaluation.report import evaluate_models  # noqa: E402
from liteasr.models import whisper  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=256)
    args, speech, split, started = start_study(p, "research/window/teacher.json")
    clips = draw(read_sources([str(speech / "librispeech_calib"), str(split["speechocean_calib"])]), args.clips, seed=0)
    policy = whisper.WindowPolicy(floor=args.floor, margin=whisper.AUTO_WINDOW.margin,
                                  multiple=whisper.AUTO_WINDOW.multiple)
    lite = args.work / "tiny.en-0.7"
    if not (lite / "config.json").is_file():
        sys.exit(f"{lite} is missing: run benchmarks/window.py first")
    dense_teacher = args.work / f"tiny.en-0.7-window-{args.floor:g}"  # benchmarks/window.py's
    if not (dense_teacher / "config.json").is_file():
        sys.exit(f"{dense_teacher} is missing: run benchmarks/window.py first")

    self_teacher = args.work / f"tiny.en-0.7-window-{args.floor:g}-self-teacher"
    heal = heal_lite_for_window(lite, None, clips, policy, self_teacher)

    sets = development_sets(speech, split, args.samples)
    labels = ["0.7, padded 30 s", "0.7 healed for the window, dense teacher", "0.7 healed for the window, itself as teacher"]
    results = evaluate_models([str(lite), str(dense_teacher), str(self_teacher)], sets, latency=False,
                              options=[DecodingOptions(window=30), None, None])
    rows = dict(zip(labels, results))
    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
               "evaluation": [ds.name for ds in sets], "samples": args.samples, "seed": 0,
               "policy": policy.to_dict(), "self_teacher_heal": heal,
               "dense_teacher_heal": json.loads((dense_teacher / "window_heal.json").read_text()),
               "rows": rows, "minutes": (time.time() - started) / 60}
    args.json.write_text(json.dumps(payload, indent=1))
    for label, r in rows.items():
        cells = []
        for ds in sets:
            d = r["datasets"][ds.name]
            delta = d.get("delta_wer")
            cells.append(f"{d['wer']:.2f}" + (f" ({delta['delta']:+.2f} [{delta['low']:+.2f}, {delta['high']:+.2f}])"
                                              if delta else "") + f", runaways {d['runaways']}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"held-out loss: dense teacher {payload['dense_teacher_heal']['loss']}, itself {heal['loss']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
