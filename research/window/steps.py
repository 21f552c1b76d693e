"""Healing for the short window, longer: does the held-out loss (and the WER) keep improving past the product's
150 steps, at which learning rate, and when more than the encoder's projections train?

    python research/window/steps.py --model dense --steps 1000 --lr 1e-4 --scope projections \
        [--schedule constant|cosine] [--floor 5] [--clips 256] [--samples 80] [--json research/window/steps.json]

The setting of benchmarks/window.py (calibration and healing audio: librispeech_calib + half of speechocean's
speakers, 256 clips, seed 0; a window of the audio + 1 s with a --floor s floor), but WER on *development*
draws (seed 0) of librispeech_other and speechocean's other speakers: benchmarks/window.py reports on seed-1
draws. `--model dense` heals dense tiny.en itself; `0.7` heals the default 0.7 compression benchmarks/window.py
made (runs/window/tiny.en-0.7). `--scope projections` is refine.heal_window's own (the encoder's linear
projections); `encoder` frees every encoder parameter (LayerNorms, convolutions, positions too). Each run adds
its row to the JSON (keyed by its arguments): held-out loss at every check, steps, minutes, and WER of the
model on padded windows and healed on short windows, with the paired interval.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import multilingual_splits, speech_or_exit  # noqa: E402

from liteasr.data.audio import draw, read_sources  # noqa: E402
from liteasr.decoding.transcribe import DecodingOptions  # noqa: E402
from liteasr.evaluation.report import evaluate_models, load_eval_sets  # noqa: E402
from liteasr.models import whisper  # noqa: E402
from liteasr.refine.heal import HealConfig  # noqa: E402
from liteasr.refine.window import heal_window  # noqa: E402


def heal(args, start, clips, policy):
    """Heal `start` for `policy` with the study's settings; (saved model, tag, held-out (before, best), steps,
    checks, minutes)."""
    started = time.time()
    teacher = whisper.load("tiny.en")
    student = teacher if args.model == "dense" else whisper.load(start)

    config = HealConfig(steps=args.steps, lr=args.lr, minutes=None, eval_every=args.eval_every,
                        schedule=args.schedule)
    modules = None if args.scope == "projections" else [student.model.model.encoder]  # None: the product's
    checks = []
    report = heal_window(teacher, student.model, clips, policy, config, progress=True, modules=modules,
                         on_check=lambda step, loss: checks.append((step, loss)))
    loss, steps = report.e2e_loss, report.steps
    heal_minutes = (time.time() - started) / 60
    student.model.config.liteasr_window = policy.to_dict()
    tag = f"{args.model}-steps{args.steps}-lr{args.lr:g}-{args.scope}-floor{args.floor:g}"
    if args.schedule != "constant":  # the first runs' tags had no schedule: constant
        tag += f"-{args.schedule}"
    out = args.work / "study" / tag
    if out.exists():
        shutil.rmtree(out)
    if args.model != "dense":  # a lite checkpoint: keep its model code and card
        shutil.copytree(start, out)
    student.model.save_pretrained(out)
    student.processor.save_pretrained(out)

    return out, tag, loss, steps, checks, heal_minutes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["dense", "0.7"], default="dense")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--scope", choices=["projections", "encoder"], default="projections")
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                   help="learning rate: constant, or cosine decay from --lr to 0 over --steps (the product's since "
                        "this study)")
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--floor", type=float, default=5.0)
    p.add_argument("--clips", type=int, default=256)
    p.add_argument("--samples", type=int, default=80, help="development clips per set (seed 0)")
    p.add_argument("--work", type=Path, default=Path("runs/window"))
    p.add_argument("--json", type=Path, default=Path("research/window/steps.json"))
    p.add_argument("--existing", type=Path, help="evaluate this model, already healed for the window (e.g. "
                   "benchmarks/window.py's 150-step runs/window/tiny.en-window-5), instead of healing")
    args = p.parse_args()
    speech, started = speech_or_exit(), time.time()
    split = multilingual_splits(speech, args.work)
    clips = draw(read_sources([str(speech / "librispeech_calib"), str(split["speechocean_calib"])]), args.clips, seed=0)
    policy = whisper.WindowPolicy(floor=args.floor)
    start = "tiny.en" if args.model == "dense" else str(args.work / "tiny.en-0.7")
    if args.existing:
        out, tag, loss, steps, checks, heal_minutes = args.existing, f"existing:{args.existing}", (None, None), None, [], None
    else:
        out, tag, loss, steps, checks, heal_minutes = heal(args, start, clips, policy)

    sets = load_eval_sets([str(speech / "librispeech_other"), str(split["speechocean_heldout"])], args.samples, seed=0)
    results = evaluate_models([start, str(out)], sets, latency=False, options=[DecodingOptions(window=30), None])
    row = {"args": {k: str(v) for k, v in vars(args).items()}, "held_out": {"before": loss[0], "best": loss[1],
                                                                          "checks": checks},
           "steps": steps, "heal_minutes": heal_minutes, "minutes": (time.time() - started) / 60,
           "wer": {ds: {"padded": results[0]["datasets"][ds]["wer"], "healed_short": d["wer"],
                        "delta": d["delta_wer"], "runaways": d["runaways"], "padded_runaways":
                        results[0]["datasets"][ds]["runaways"]}
                   for ds, d in results[1]["datasets"].items()}}
    data = json.loads(args.json.read_text()) if args.json.is_file() else {}
    data[tag] = row
    args.json.write_text(json.dumps(data, indent=1))
    if steps is not None:
        print(tag, f"held-out {loss[0]:.4f} -> {loss[1]:.4f} in {steps} steps ({heal_minutes:.1f} min)")
    for ds, r in row["wer"].items():
        d = r["delta"]
        print(f"  {ds}: padded {r['padded']:.2f}, healed short {r['healed_short']:.2f} "
              f"({d['delta']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]), runaways {r['runaways']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
