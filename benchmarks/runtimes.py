"""Runtimes side by side: PyTorch, CTranslate2 (faster-whisper's engine) and liteasr's ONNX exports,
dense and lite, fp32 and int8, all in this process on the same CPU threads, interleaved.

    python benchmarks/runtimes.py [LITE_DIR] [--model tiny.en] [--work DIR] [--samples 40] [--repeats 10]
        [--json benchmarks/runtimes.json] [--markdown benchmarks/RESULTS.md]
    python benchmarks/runtimes.py LITE_DIR --encoder-only --json /tmp/x.json   # encoder rows only (fast, for graph work)

LITE_DIR is a lite-whisper checkpoint of --model (default: tiny.en at 0.7 with every other default, made under
runs/bench by benchmarks/_common.default_compression unless there already). Exports go to --work (reused when
present). Encoder: ms per 30 s window, batch 1 and 8, median ± half
the interquartile range of interleaved runs. Transcription: greedy, batch 8, over --samples clips of
librispeech_other, models interleaved; WER from the same run.
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from _common import DEFAULT_WORK, default_compression, emit, speech_or_exit, write_json

from liteasr import runtime
from liteasr.data.audio import SAMPLE_RATE, load_audio, read_dataset, sample
from liteasr.evaluation.bench import _summary, encoder_latency
from liteasr.evaluation.evaluate import corpus_wer
from liteasr.runtime.export import export
from liteasr.runtime.layout import is_onnx_dir
from liteasr.decoding.transcribe import transcribe


def models(dense: str, lite: str, work: Path) -> dict[str, str]:
    exports = {"liteasr ONNX dense fp32": (dense, None), "liteasr ONNX dense int8": (dense, "int8"),
               "liteasr ONNX lite fp32": (lite, None), "liteasr ONNX lite int8": (lite, "int8")}
    specs = {"HF dense fp32 (PyTorch)": dense, "PyTorch lite fp32": lite,
             "CTranslate2 fp32": f"ctranslate2:{dense}:float32", "CTranslate2 int8": f"ctranslate2:{dense}:int8"}
    for label, (src, quantize) in exports.items():
        out = work / dense / label.split(" ", 2)[2].replace(" ", "_")
        source = Path(src) / "config.json"  # an export older than its checkpoint is stale
        if not is_onnx_dir(out) or (source.is_file() and source.stat().st_mtime > out.stat().st_mtime):
            export(src, out, quantize=quantize, overwrite=True, progress=False)
        specs[label] = str(out)
    return specs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("lite", nargs="?", help="default: the default 0.7 compression of tiny.en (runs/bench)")
    ap.add_argument("--model", default="tiny.en", help="the dense model LITE_DIR was compressed from")
    ap.add_argument("--json", default="benchmarks/runtimes.json", help="write the rows here")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK / "runtimes")
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--transcribe-repeats", type=int, default=2)
    ap.add_argument("--encoder-only", action="store_true")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    speech = speech_or_exit()
    t0 = time.time()
    args.lite = args.lite or str(default_compression())
    specs = models(args.model, args.lite, args.work)
    loaded = {label: runtime.load(spec) for label, spec in specs.items()}
    enc = {b: dict(zip(loaded, encoder_latency(list(loaded.values()), batch_size=b, repeats=args.repeats)))
           for b in (1, 8)}
    ref = "CTranslate2 int8"
    rows = {label: {"b1": enc[1][label], "b8": enc[8][label]} for label in loaded}
    if not args.encoder_only:
        clips = sample([c for c in read_dataset(speech / "librispeech_other").clips if c.text], args.samples, 0)
        audios = [load_audio(c.path) for c in clips]
        audio_s = sum(len(a) for a in audios) / SAMPLE_RATE
        seconds = {label: [] for label in loaded}
        for label, m in loaded.items():  # warm-up
            transcribe(m, audios[:8], progress=False, warmup=False)
        for _ in range(args.transcribe_repeats):
            for label, m in loaded.items():
                out = transcribe(m, audios, batch_size=8, progress=False, warmup=False)
                seconds[label].append(out.seconds)
                rows[label]["wer"] = corpus_wer([c.text for c in clips], out.texts).wer
        for label in loaded:
            t = _summary(seconds[label])
            rows[label]["rtfx"] = audio_s / (t.median_ms / 1e3)
    command = "python benchmarks/runtimes.py " + " ".join(sys.argv[1:])
    if args.json:
        write_json(args.json, {
            "command": command, "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
            "threads": torch.get_num_threads(), "model": args.model, "lite": args.lite, "specs": specs,
            "rows": {label: {**{f"encoder_ms_{b}": {"median": r[b].median_ms, "spread": r[b].spread_ms}
                                for b in ("b1", "b8")}, **{k: r[k] for k in ("rtfx", "wer") if k in r}}
                     for label, r in rows.items()}})
    lines = [f"### Runtimes: {args.model}, {platform.machine()} CPU, {torch.get_num_threads()} threads "
             f"({time.strftime('%Y-%m-%d')}; JSON: {args.json})",
             "", f"Command: `{command.strip()}` ({time.time() - t0:.0f} s);"
             f" {args.repeats} interleaved encoder runs per batch size; lite = `{args.lite}`."
             + ("" if args.encoder_only else f" Transcription: {args.samples} librispeech_other clips, batch 8, "
                f"{args.transcribe_repeats} interleaved runs (median)."), "",
             "| runtime | enc ms/window b1 | vs CT2 int8 | enc ms/window b8 | vs CT2 int8 |"
             + ("" if args.encoder_only else " RTFx | vs CT2 int8 | WER |"),
             "|---|---:|---:|---:|---:|" + ("" if args.encoder_only else "---:|---:|---:|")]
    for label, r in rows.items():
        line = (f"| {label} | {r['b1'].median_ms:.0f} ± {r['b1'].spread_ms:.0f} | {rows[ref]['b1'].median_ms / r['b1'].median_ms:.2f}x"
                f" | {r['b8'].median_ms:.0f} ± {r['b8'].spread_ms:.0f} | {rows[ref]['b8'].median_ms / r['b8'].median_ms:.2f}x |")
        if not args.encoder_only:
            line += f" {r['rtfx']:.1f} | {r['rtfx'] / rows[ref]['rtfx']:.2f}x | {r['wer']:.2f} |"
        lines.append(line)
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
