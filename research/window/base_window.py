"""The adaptive window on multilingual base: healed for it on an English + Polish calibration, in every language.

    python research/window/base_window.py [--work runs/base] [--samples 40] [--out runs/window/base-window-5]
        [--json research/window/base_window.json]

Dense base healed for windows of the audio + 1 s, at least 5 s (`compress --window auto`'s policy and healing,
refine.WINDOW_HEAL: 1000 steps, the rate decaying by a cosine, within 30 minutes) on benchmarks/base.py's
calibration (256 clips of English and Polish, seed 0), then evaluated beside dense base on its padded window on
benchmarks/base.py's sets (40 clips each, seed 0; Italian, German and Spanish never in the healing audio): WER,
ΔWER against the padded window with paired-bootstrap 95% intervals, runaways (over 3x the reference).
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import (add_base_study_args, base_calibration, base_eval_sets, multilingual_splits,  # noqa: E402
                     speech_or_exit)
from window import healed_for_window  # noqa: E402

from liteasr.data.audio import draw, read_sources  # noqa: E402
from liteasr.decoding.transcribe import DecodingOptions  # noqa: E402
from liteasr.evaluation.report import evaluate_models, load_eval_sets  # noqa: E402
from liteasr.models import whisper  # noqa: E402
from liteasr.refine import WINDOW_HEAL, with_runs  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_base_study_args(p, sweep=False)
    p.add_argument("--out", type=Path, default=Path("runs/window/base-window-5"))
    p.add_argument("--json", type=Path, default=Path("research/window/base_window.json"))
    args = p.parse_args()
    speech, started = speech_or_exit(), time.time()
    split = multilingual_splits(speech, args.work)
    calibration = base_calibration(speech, split)
    clips = draw(read_sources(calibration), args.clips, seed=0)
    healed = healed_for_window("base", "base", clips, whisper.AUTO_WINDOW, args.out, with_runs(WINDOW_HEAL, 1))  # one run, as measured
    sets = base_eval_sets(speech, split)
    results = evaluate_models(["base", healed], load_eval_sets(sets, args.samples, seed=0), latency=False,
                              options=[DecodingOptions(window=30), None])
    for r in results:
        print(r["model"], {n: (round(d["wer"], 2), d.get("delta_wer"), d["runaways"]) for n, d in r["datasets"].items()})
    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
               "calibration": calibration, "clips": len(clips), "policy": whisper.AUTO_WINDOW.to_dict(),
               "window_heal": json.loads((Path(healed) / "window_heal.json").read_text()), "sets": sets,
               "samples": args.samples, "results": results, "minutes": (time.time() - started) / 60}
    args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
