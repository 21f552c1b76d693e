"""Decoding like faster-whisper (issue 36's table): greedy vs greedy + temperature fallback vs beam 5 +
fallback (`liteasr transcribe`'s defaults), for dense tiny.en, the default compression at 0.7 and 0.6 and the
paper's rule, beside faster-whisper itself.

    python benchmarks/decoding.py [--samples 100] [--runaway-samples 40] [--work runs/decoding]
        [--json benchmarks/decoding.json] [--markdown FILE]

Compressed models: `compress`'s defaults on 256 clips of librispeech_calib and half of speechocean_train's
speakers (seed 0; `--target-params 0.7` / `0.6`, healed; the paper's rule: `--threshold 0.99:0.999`, plain PCA
factors); the 0.7 model is benchmarks/window.py's when --work holds it. Evaluation on speakers none of them
heard: librispeech_other and speechocean's other speakers, --samples clips each (seed 1), WER with paired-
bootstrap 95% intervals against the same model decoded greedily, how many clips fell back, RTFx. Runaways
(transcripts over 3x their reference): every shared English set with the defaults, --runaway-samples clips
each. faster-whisper (its own transcribe with its defaults, CTranslate2 float32 tiny.en, same normalizer) on
the same clips; and the time of the defaults on the ONNX Runtime int8 export of dense tiny.en against
faster-whisper int8, interleaved, on the librispeech_other clips.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from _common import decoding_eval_sets, emit, multilingual_splits, speech_or_exit, wer_cell, write_json

from liteasr import runtime
from liteasr.data.audio import draw, load_audio, read_sources
from liteasr.decoding.transcribe import DecodingOptions, transcribe
from liteasr.evaluation.evaluate import evaluate_dataset, paired_bootstrap, pooled_wer, utterance_errors
from liteasr.evaluation.report import evaluate_models, load_eval_sets
from liteasr.models.sources import offline_copy
from liteasr.pipeline import CompressConfig, compress
from liteasr.runtime.export import export
from liteasr.runtime.layout import is_onnx_dir

MODES = {"greedy": DecodingOptions(), "greedy + fallback": DecodingOptions.like_faster_whisper(beam_size=1),
         "beam 5 + fallback": DecodingOptions.like_faster_whisper()}
SINGLE_SPEAKER = ("vctk_p239", "dc_tts", "ljspeech", "cathy_arctic")


def build(work: Path, clips) -> dict[str, str]:
    """The four models (built once, kept under `work`)."""
    models = {"dense tiny.en": "tiny.en"}
    for label, name, config in (("0.7 (default)", "tiny.en-0.7", CompressConfig(target_params=0.7)),
                                ("0.6 (default)", "tiny.en-0.6", CompressConfig(target_params=0.6)),
                                ("paper's rule", "tiny.en-paper", CompressConfig(threshold="0.99:0.999"))):
        out = work / name
        shared = Path("runs/window") / name  # benchmarks/window.py builds the same 0.7 model
        if not (out / "config.json").is_file() and (shared / "config.json").is_file():
            out = shared
        if not (out / "config.json").is_file():
            compress("tiny.en", clips, config).save(out, overwrite=True)
        models[label] = str(out)
    return models


def faster_whisper_texts(model, audios, **changes) -> tuple[list[str], float]:
    """faster-whisper's transcribe with its defaults (language given; `changes`: other transcribe arguments),
    and the seconds it took."""
    t0 = time.perf_counter()
    texts = []
    for audio in audios:
        segments, _ = model.transcribe(audio, language="en", vad_filter=False, **changes)
        texts.append("".join(s.text for s in segments).strip())
    return texts, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=100, help="clips per multi-speaker set (seed 1)")
    p.add_argument("--runaway-samples", type=int, default=40, help="clips per single-speaker set (seed 1)")
    p.add_argument("--clips", type=int, default=256, help="calibration clips (seed 0)")
    p.add_argument("--work", type=Path, default=Path("runs/decoding"))
    p.add_argument("--json", default="benchmarks/decoding.json")
    p.add_argument("--markdown")
    p.add_argument("--runaways-only", action="store_true",
                   help="recount the runaway table of an existing --json (with the defaults) and print the tables")
    args = p.parse_args()
    import faster_whisper

    speech, started = speech_or_exit(), time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    split = multilingual_splits(speech, args.work)
    sources = [str(speech / "librispeech_calib"), str(split["speechocean_calib"])]
    models = build(args.work, draw(read_sources(sources), args.clips, seed=0))
    multi = decoding_eval_sets(speech, split, args.samples)
    single = load_eval_sets([str(speech / s) for s in SINGLE_SPEAKER], args.runaway_samples, seed=1)
    if args.runaways_only:
        payload = json.loads(Path(args.json).read_text())
        payload["runaways_with_defaults"] = recount(models, single + multi)
        payload["runaways_command"] = "python " + " ".join(sys.argv)
        write_json(args.json, payload)
        emit(tables(payload, [ds.name for ds in multi], len(multi[0].clips)), args.markdown)
        return 0

    rows, runaways = {}, {}
    for label, spec in models.items():
        results = evaluate_models([spec] * len(MODES), multi, latency=False, options=list(MODES.values()))
        rows[label] = {mode: r for mode, r in zip(MODES, results)}
        (r,) = evaluate_models([spec], single, latency=False, options=[MODES["beam 5 + fallback"]])
        runaways[label] = {name: {k: d[k] for k in ("wer", "longest_ratio", "runaways", "fallbacks")}
                           for name, d in r["datasets"].items()}
        runaways[label].update({name: {k: d[k] for k in ("wer", "longest_ratio", "runaways", "fallbacks")}
                                for name, d in rows[label]["beam 5 + fallback"]["datasets"].items()})

    # faster-whisper itself on the same clips, against liteasr's defaults on dense tiny.en
    # WER at liteasr's precision (float32; the same text clip by clip: tests/test_decoding.py), time at int8
    fw32, fw = (faster_whisper.WhisperModel(str(offline_copy("tiny.en")), device="cpu", compute_type=kind,
                                            cpu_threads=torch.get_num_threads()) for kind in ("float32", "int8"))
    dense = runtime.load("tiny.en")
    reference_fw = {}
    for ds in multi:
        audios = [load_audio(c) for c in ds.clips]
        texts, seconds = faster_whisper_texts(fw32, audios)
        refs = [c.text for c in ds.clips]
        mine = evaluate_dataset(dense, ds, progress=False, options=MODES["beam 5 + fallback"])
        ours = [(t["errors"], t["words"]) for t in mine.transcripts]
        theirs = utterance_errors(refs, texts, "en")
        delta = paired_bootstrap(ours, theirs)  # faster-whisper minus liteasr
        reference_fw[ds.name] = {"wer": pooled_wer(theirs), "rtfx": sum(map(len, audios)) / 16000 / seconds,
                                 "minus_liteasr_dense_defaults": {"delta": delta.delta, "low": delta.low, "high": delta.high}}

    # time: the defaults on ONNX Runtime int8 (dense tiny.en) vs faster-whisper int8, interleaved
    onnx_dir = args.work / "onnx-tiny.en-int8"
    if not is_onnx_dir(onnx_dir):
        export("tiny.en", onnx_dir, quantize="int8", overwrite=True, progress=False)
    onnx = runtime.load(str(onnx_dir))
    audios = [load_audio(c) for c in multi[0].clips]
    audio_s = sum(map(len, audios)) / 16000
    timing = {"onnx int8, liteasr defaults": [], "faster-whisper int8, its defaults": []}
    transcribe(onnx, audios[:8], progress=False, options=MODES["beam 5 + fallback"])  # warm-up
    faster_whisper_texts(fw, audios[:2])
    for _ in range(2):
        t0 = time.perf_counter()
        transcribe(onnx, audios, progress=False, warmup=False, options=MODES["beam 5 + fallback"])
        timing["onnx int8, liteasr defaults"].append(time.perf_counter() - t0)
        timing["faster-whisper int8, its defaults"].append(faster_whisper_texts(fw, audios)[1])
    speed = {k: {"seconds": min(v), "rtfx": audio_s / min(v)} for k, v in timing.items()}

    strip = lambda r: {**r, "datasets": {n: {k: v for k, v in d.items() if k != "transcripts"}  # noqa: E731
                                         for n, d in r["datasets"].items()}}
    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
               "threads": torch.get_num_threads(), "models": models, "calibration": sources,
               "samples": args.samples, "runaway_samples": args.runaway_samples,
               "wer": {m: {mode: strip(r) for mode, r in by_mode.items()} for m, by_mode in rows.items()},
               "runaways_with_defaults": runaways, "faster_whisper": reference_fw, "speed": speed,
               "minutes": (time.time() - started) / 60}
    write_json(args.json, payload)

    emit(tables(payload, [ds.name for ds in multi], len(audios)), args.markdown)
    return 0


def recount(models: dict[str, str], sets) -> dict:
    """Every set's longest transcript over its reference and runaway count with the defaults."""
    out = {}
    for label, spec in models.items():
        (r,) = evaluate_models([spec], sets, latency=False, options=[MODES["beam 5 + fallback"]])
        out[label] = {name: {k: d[k] for k in ("wer", "longest_ratio", "runaways", "fallbacks")}
                      for name, d in r["datasets"].items()}
    return out


def tables(payload: dict, names: list[str], clips: int) -> list[str]:
    """The markdown tables of a payload."""
    rows, reference_fw, speed = payload["wer"], payload["faster_whisper"], payload["speed"]
    runaways = payload["runaways_with_defaults"]
    lines = [f"Decoding, tiny.en models, `{payload['command']}` ({payload['date']}, {payload['minutes']:.0f} min, "
             f"{payload['threads']} threads): WER (ΔWER vs the same model greedy [95% CI]), clips that fell back, "
             "RTFx", "", "| model | decoding | " + " | ".join(names) + " | fell back | RTFx |",
             "|---|---|" + "---|" * len(names) + "---:|---:|"]
    for label, by_mode in rows.items():
        for mode, r in by_mode.items():
            d = r["datasets"]
            audio_s_all = sum(x["audio_s"] for x in d.values())
            rtfx = audio_s_all / sum(x["audio_s"] / x["rtfx"] for x in d.values())
            lines.append(f"| {label} | {mode} | " + " | ".join(wer_cell(d[n]) for n in names)
                         + f" | {sum(x['fallbacks'] for x in d.values())} | {rtfx:.1f} |")
    lines.append("| faster-whisper fp32 | its defaults | " + " | ".join(
        f"{reference_fw[n]['wer']:.2f} ({reference_fw[n]['minus_liteasr_dense_defaults']['delta']:+.2f} "
        f"[{reference_fw[n]['minus_liteasr_dense_defaults']['low']:+.2f}, "
        f"{reference_fw[n]['minus_liteasr_dense_defaults']['high']:+.2f}] vs dense beam 5)" for n in names)
        + f" | | {sum(reference_fw[n]['rtfx'] for n in names) / len(names):.1f} |")
    sets = list(next(iter(runaways.values())))
    lines += ["", "Longest transcript over its reference (runaways: over 3x) with the defaults, every set", "",
              "| model | " + " | ".join(sets) + " |", "|---|" + "---:|" * len(sets)]
    for label, by_set in runaways.items():
        lines.append(f"| {label} | " + " | ".join(f"{by_set[s]['longest_ratio']:.1f}x ({by_set[s]['runaways']})"
                                                  for s in sets) + " |")
    lines += ["", f"Time to transcribe the {clips} {names[0]} clips, best of 2 "
              "interleaved runs", "", "| engine | seconds | RTFx |", "|---|---:|---:|"]
    lines += [f"| {k} | {v['seconds']:.1f} | {v['rtfx']:.1f} |" for k, v in speed.items()]
    return lines


if __name__ == "__main__":
    sys.exit(main())
