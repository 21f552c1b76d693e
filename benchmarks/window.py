"""The adaptive encoder window on tiny.en: padded vs short window without healing vs short window healed for
it, for dense tiny.en and the default 0.7 compression (issue 37's table).

    python benchmarks/window.py [--floor 5] [--clips 256] [--samples 80] [--window-heal-seeds 3] [--work runs/window]
        [--json benchmarks/window.json] [--markdown FILE]

Calibration (and healing) audio: librispeech_calib and half of speechocean_train's speakers (seed 0);
evaluation on unseen speakers: librispeech_other and speechocean's other speakers, --samples clips each
drawn with seed 1 (the window recipe was chosen on seed-0 draws). The 0.7 model is `compress`'s default
recipe (`liteasr compress tiny.en --calibration ... --target-params 0.7`); each model healed for the window
is the model before it, healed with refine.heal_window (pipeline.adapt_window; refine.WINDOW_HEAL, 1000
steps, the rate decaying by a cosine, a soup of --window-heal-seeds runs) for a window of the audio + 1 s with a
--floor s floor, as `compress ... --window auto --window-floor F` does. A soup's directory is named as
research/window/seeds.py names the soups it makes (the mean of the same runs), so either script reuses the
other's. Short windows decode with the end-of-text guard on (DecodingOptions.window_end_threshold, the default:
a clip whose end-of-text there is unsure is decoded again on the padded window); the healed models also with it
off.
WER with paired-bootstrap 95% intervals against the same model on padded windows, the runaway count (transcripts
over 3x their reference), the clips the guard decoded again, encoder ms per window for clips of 2, 5, 10 and 20 s (PyTorch fp32 and ONNX
Runtime int8, interleaved, beside CTranslate2 int8 tiny.en = faster-whisper's engine on its padded window),
and end-to-end RTFx of transcribing the evaluation clips of librispeech_other.
"""

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

from _common import emit, multilingual_splits, speech_or_exit, wer_cell, write_json

from liteasr import runtime
from liteasr.data.audio import draw, load_audio, read_sources
from liteasr.decoding.transcribe import DecodingOptions, check_options
from liteasr.evaluation.bench import encoder_latency, transcription_latency
from liteasr.evaluation.report import evaluate_models, load_eval_sets
from liteasr.models import whisper
from liteasr.pipeline import CompressConfig, adapt_window, compress
from liteasr.refine import WINDOW_HEAL, HealConfig, with_runs
from liteasr.runtime.export import export
from liteasr.runtime.layout import is_onnx_dir

SECONDS = (2, 5, 10, 20)


def healed_for_window(dense: str, start: str, clips, policy, out: Path, heal: HealConfig) -> str:
    """`start` (dense or lite) healed for `policy`'s windows against the dense model, saved to `out`."""
    if (out / "config.json").is_file():
        return str(out)
    teacher = whisper.load(dense)
    student = teacher if start == dense else whisper.load(start)
    t0 = time.time()
    report = adapt_window(teacher, student.model, clips, policy, heal)
    if start != dense:  # a lite checkpoint: keep its model code and card, replace weights and config
        shutil.copytree(start, out)
    student.model.save_pretrained(out)
    student.processor.save_pretrained(out)
    write_json(out / "window_heal.json", {"loss": report.e2e_loss, "steps": report.steps,
                                          "minutes": (time.time() - t0) / 60})
    return str(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--floor", type=float, default=whisper.AUTO_WINDOW.floor, help="shortest window, seconds")
    p.add_argument("--clips", type=int, default=256, help="calibration clips (seed 0)")
    p.add_argument("--samples", type=int, default=80, help="evaluation clips per set (seed 1)")
    p.add_argument("--heal-minutes", type=float, default=HealConfig().minutes, help="healing the 0.7 factors")
    p.add_argument("--window-heal-minutes", type=float,
                   help="healing for the window, all runs together (default: 30 min a run)")
    p.add_argument("--window-heal-steps", type=int, default=WINDOW_HEAL.steps)
    p.add_argument("--window-heal-seeds", type=int, default=WINDOW_HEAL.seeds, help="runs averaged (a soup)")
    p.add_argument("--work", type=Path, default=Path("runs/window"))
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json", default="benchmarks/window.json")
    p.add_argument("--markdown")
    args = p.parse_args()
    speech, started = speech_or_exit(), time.time()
    split = multilingual_splits(speech, args.work)
    sources = [str(speech / "librispeech_calib"), str(split["speechocean_calib"])]
    clips = draw(read_sources(sources), args.clips, seed=0)
    policy = whisper.WindowPolicy(floor=args.floor, margin=whisper.AUTO_WINDOW.margin,
                                  multiple=whisper.AUTO_WINDOW.multiple)
    heal = HealConfig(minutes=args.heal_minutes)
    window_heal = with_runs(dataclasses.replace(WINDOW_HEAL, steps=args.window_heal_steps), args.window_heal_seeds)
    if args.window_heal_minutes is not None:
        window_heal = dataclasses.replace(window_heal, minutes=args.window_heal_minutes)

    lite = args.work / "tiny.en-0.7"
    if not (lite / "config.json").is_file():
        compress("tiny.en", clips, CompressConfig(target_params=0.7, heal=heal)).save(lite, overwrite=True)
    suffix = f"window-{args.floor:g}" + (f"-soup{window_heal.seeds}" if window_heal.seeds > 1 else "")
    dense_w = healed_for_window("tiny.en", "tiny.en", clips, policy, args.work / f"tiny.en-{suffix}", window_heal)
    lite_w = healed_for_window("tiny.en", str(lite), clips, policy, args.work / f"tiny.en-0.7-{suffix}", window_heal)

    # WER: each model on padded windows first, then the same weights on short windows, then healed for them
    sets = load_eval_sets([str(speech / "librispeech_other"), str(split["speechocean_heldout"])], args.samples, seed=1)
    # (the short window's end-of-text guard is on by default: a clip that ends unsurely is decoded again padded)
    padded, short = DecodingOptions(window=30), DecodingOptions(window=policy)
    unguarded = DecodingOptions(window_end_threshold=None)
    rows = {}
    for name, (base, healed) in {"dense tiny.en": ("tiny.en", dense_w), "0.7 (default compression)": (str(lite), lite_w)}.items():
        results = evaluate_models([base, base, healed, healed], sets, latency=False,
                                  options=[padded, short, unguarded, None])
        rows[name] = dict(zip(["padded 30 s", "short, not healed", "short, healed, guard off", "short, healed for it"],
                              results))

    # Encoder ms per window at each clip length; PyTorch and ONNX Runtime int8, CTranslate2 int8 beside
    onnx = {}
    for label, spec in (("dense", "tiny.en"), ("dense healed", dense_w), ("0.7", str(lite)), ("0.7 healed", lite_w)):
        out = args.work / "onnx" / Path(spec).name
        if not is_onnx_dir(out):
            export(spec, out, quantize="int8", overwrite=True, progress=False)
        onnx[label] = str(out)
    engines = {"PyTorch fp32": {"dense, padded": ("tiny.en", padded), "dense, healed window": (dense_w, None),
                                "0.7, padded": (str(lite), padded), "0.7, healed window": (lite_w, None)},
               "ONNX Runtime int8": {"dense, padded": (onnx["dense"], padded),
                                     "dense, healed window": (onnx["dense healed"], None),
                                     "0.7, padded": (onnx["0.7"], padded), "0.7, healed window": (onnx["0.7 healed"], None)},
               "CTranslate2 int8": {"dense, padded": ("ctranslate2:tiny.en:int8", None)}}
    loaded = {spec: runtime.load(spec) for group in engines.values() for spec, _ in group.values()}
    flat = [(engine, label, loaded[spec], check_options(loaded[spec], options))
            for engine, group in engines.items() for label, (spec, options) in group.items()]
    encoder_ms = {}
    for seconds in SECONDS:
        frames = [o.window.frames(seconds * 16000) for *_, o in flat]
        timings = encoder_latency([m for _, _, m, _ in flat], repeats=args.repeats, frames=frames)
        encoder_ms[seconds] = {f"{e} / {label}": {"ms": t.median_ms, "spread": t.spread_ms, "window_s": f / 100}
                               for (e, label, _, _), t, f in zip(flat, timings, frames)}
    audios = [load_audio(c) for c in sets[0].clips]
    audio_s = sum(len(a) for a in audios) / 16000
    times = transcription_latency([m for _, _, m, _ in flat], audios, repeats=2, options=[o for *_, o in flat])
    rtfx = {f"{e} / {label}": audio_s / (t.median_ms / 1e3) for (e, label, _, _), t in zip(flat, times)}

    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
               "policy": policy.to_dict(), "calibration": sources, "clips": args.clips,
               "evaluation": [ds.name for ds in sets], "samples": args.samples, "wer": rows,
               "encoder_ms": encoder_ms, "rtfx_librispeech_other": rtfx,
               "window_heal": {n: json.loads((Path(d) / "window_heal.json").read_text()) for n, d in
                               (("dense", dense_w), ("0.7", lite_w))}}
    payload["minutes"] = (time.time() - started) / 60
    write_json(args.json, payload)

    names = [ds.name for ds in sets]
    lines = [f"tiny.en, adaptive window (audio + {policy.margin:g} s, floor {policy.floor:g} s), "
             f"`{payload['command']}` ({payload['date']}, {payload['minutes']:.0f} min); WER (ΔWER vs the same "
             "model padded [95% CI]), runaways (> 3x the reference), clips decoded again on the padded window "
             "(the end-of-text guard)", "",
             "| model | window | " + " | ".join(names) + " | runaways | decoded again |",
             "|---|---|" + "---|" * len(names) + "---:|---:|"]
    for name, by_window in rows.items():
        for window, r in by_window.items():
            cells = [wer_cell(r["datasets"][n]) for n in names]
            lines.append(f"| {name} | {window} | " + " | ".join(cells) + f" | "
                         f"{sum(d['runaways'] for d in r['datasets'].values())} | "
                         f"{sum(d['padded_again'] for d in r['datasets'].values())} |")
    lines += ["", "Encoder ms per window (median of interleaved runs), by clip length; RTFx: transcribing "
              f"{len(audios)} clips of {names[0]} end to end", "",
              "| engine / model | " + " | ".join(f"{s} s" for s in SECONDS) + " | RTFx |",
              "|---|" + "---:|" * (len(SECONDS) + 1)]
    for key in encoder_ms[SECONDS[0]]:
        lines.append(f"| {key} | " + " | ".join(f"{encoder_ms[s][key]['ms']:.1f}" for s in SECONDS)
                     + f" | {rtfx[key]:.1f} |")
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
