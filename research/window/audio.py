"""Does healing for the short window generalize better on more audio? The 0.7 model healed for the window on
benchmarks/window.py's 256 calibration clips against the same model healed on every unlabeled English clip at
hand that no evaluation set holds.

    python research/window/audio.py [--samples 80] [--work runs/window] [--json research/window/audio.json]

refine.WINDOW_HEAL takes 1000 steps of 4 windows: on 224 training clips that is about 18 passes over each clip,
and healing the factors on more voices (575 clips instead of 200) was worth 1.3-1.7 WER points on unseen
speakers at 0.6 (research/healing/summary.md). The larger set: all of librispeech_calib (128 clips) and of
speechocean's calibration half (207), and 60 clips each of the single-speaker sets vctk_p239, dc_tts and
cathy_arctic and all 32 of ljspeech (seed 0): 547 clips. benchmarks/window.py's 0.7 model
(runs/window/tiny.en-0.7) is healed on it with refine.WINDOW_HEAL (every step: no time budget, as for the
256-clip model) for windows of the audio + 1 s, floor 5 s, against dense tiny.en padded, and evaluated beside
the 256-clip model on the development draws of research/window/steps.py (seed 0, --samples clips per set;
benchmarks/window.py reports on seed-1 draws), greedy: WER, ΔWER against the 0.7 model padded (paired
bootstrap), runaways, and the new against the old model clip by clip.
"""

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _study import start_study, development_sets, heal_lite_for_window  # noqa: E402

from liteasr import runtime  # noqa: E402
from liteasr.data.audio import draw, read_sources  # noqa: E402
from liteasr.decoding.transcribe import DecodingOptions  # noqa: E402
from liteasr.evaluation.evaluate import evaluate_dataset, paired_bootstrap  # noqa: E402
from liteasr.models import whisper  # noqa: E402

SINGLE_SPEAKERS = {"vctk_p239": 60, "dc_tts": 60, "cathy_arctic": 60, "ljspeech": 32}


def healing_audio(speech: Path, split: dict) -> list:
    clips = draw(read_sources([str(speech / "librispeech_calib"), str(split["speechocean_calib"])]), None)
    for name, count in SINGLE_SPEAKERS.items():
        clips += draw(read_sources([str(speech / name)]), count, seed=0)
    return clips


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    args, speech, split, started = start_study(p, "research/window/audio.json")
    clips = healing_audio(speech, split)
    policy = whisper.WindowPolicy(floor=args.floor, margin=whisper.AUTO_WINDOW.margin,
                                  multiple=whisper.AUTO_WINDOW.multiple)
    lite = args.work / "tiny.en-0.7"
    old = args.work / f"tiny.en-0.7-window-{args.floor:g}"  # benchmarks/window.py's, healed on 256 clips
    for path in (lite, old):
        if not (path / "config.json").is_file():
            sys.exit(f"{path} is missing: run benchmarks/window.py first")

    new = args.work / f"tiny.en-0.7-window-{args.floor:g}-{len(clips)}-clips"
    heal = heal_lite_for_window(lite, "tiny.en", clips, policy, new)

    sets = development_sets(speech, split, args.samples)
    labels = ["0.7, padded 30 s", "0.7 healed for the window on 256 clips", f"0.7 healed for the window on {len(clips)} clips"]
    specs = [(str(lite), DecodingOptions(window=30)), (str(old), None), (str(new), None)]
    errors, rows = {}, {}
    for label, (spec, options) in zip(labels, specs):
        loaded = runtime.load(spec)
        rows[label] = {}
        for ds in sets:
            r = evaluate_dataset(loaded, ds, options=options)
            errors[label, ds.name] = [(t["errors"], t["words"]) for t in r.transcripts]
            s = r.summary()
            rows[label][ds.name] = {"wer": s["wer"], "runaways": s["runaways"]}
            if label != labels[0]:
                rows[label][ds.name]["delta_wer"] = asdict(paired_bootstrap(errors[labels[0], ds.name], errors[label, ds.name]))
    new_vs_old = {ds.name: asdict(paired_bootstrap(errors[labels[1], ds.name], errors[labels[2], ds.name])) for ds in sets}
    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
               "evaluation": [ds.name for ds in sets], "samples": args.samples, "seed": 0,
               "policy": policy.to_dict(), "healing_clips": len(clips), "single_speakers": SINGLE_SPEAKERS,
               "heal": heal, "heal_256": json.loads((old / "window_heal.json").read_text()),
               "rows": rows, "new_minus_old": new_vs_old, "minutes": (time.time() - started) / 60}
    args.json.write_text(json.dumps(payload, indent=1))
    for label, r in rows.items():
        cells = []
        for ds in sets:
            d = r[ds.name]
            delta = d.get("delta_wer")
            cells.append(f"{d['wer']:.2f}" + (f" ({delta['delta']:+.2f} [{delta['low']:+.2f}, {delta['high']:+.2f}])"
                                              if delta else "") + f", runaways {d['runaways']}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    for name, d in new_vs_old.items():
        print(f"{name}: new - old {d['delta']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]")
    print(f"held-out loss: 256 clips {payload['heal_256']['loss']}, {len(clips)} clips {heal['loss']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
