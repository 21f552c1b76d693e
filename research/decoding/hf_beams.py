"""Is issue 36's 10% out of reach because of the clips or because of the search? liteasr's beam search against
transformers' own `generate` on benchmarks/decoding.py's clips, dense tiny.en.

    python research/decoding/hf_beams.py [--samples 100] [--work runs/decoding]
        [--json research/decoding/hf_beams.json]

Issue 36's probe (transformers' generate, 100 other clips of 17 speakers) measured beam 5 + fallback 19% below
greedy for dense tiny.en; benchmarks/decoding.py's 2026-12-03 run measured liteasr's defaults 9.1% / 9.9% below
it, and faster-whisper's own 2.7% / 2.7%, on librispeech_other and speechocean's held-out speakers (100 clips
each, seed 1). Here, on those same clips: liteasr greedy, beam 5 and beam 5 + fallback (`transcribe`'s
defaults) beside transformers' `generate` with 5 beams (its greedy gives liteasr's greedy tokens:
tests/test_pipeline.py). One run, nothing tuned; paired-bootstrap 95% intervals against liteasr greedy.

Every transcript is scored twice: as `eval` scores English now (Whisper's English normalizer after written
single digits in a row are spelled out) and by the Open ASR Leaderboard's normalizer alone, which `eval` used before 2026-12-05 and
which scores a right "4, 4, 7, 2" as 4 errors against "FOUR FOUR SEVEN TWO" (it joins spelled digits only).
"""

import sys
import time
from pathlib import Path

import jiwer
import torch
from tqdm import tqdm
from whisper_normalizer.english import EnglishTextNormalizer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import decoding_study, write_json  # noqa: E402

from liteasr.data.audio import load_audio  # noqa: E402
from liteasr.decoding.transcribe import DecodingOptions  # noqa: E402
from liteasr.evaluation.evaluate import evaluate_dataset, paired_bootstrap, pooled_wer, utterance_errors  # noqa: E402
from liteasr.models import whisper  # noqa: E402

OURS = {"liteasr greedy": DecodingOptions(), "liteasr beam 5": DecodingOptions(beam_size=5),
        "liteasr beam 5 + fallback": DecodingOptions.like_faster_whisper()}
THEIRS = {"generate beam 5": dict(num_beams=5)}


def generate_texts(loaded, clips, kwargs: dict, batch_size: int = 8) -> tuple[list[str], float]:
    """transformers' generate on one 30 s window per clip, its own prompt (tiny.en: none to choose)."""
    texts, seconds = [], 0.0
    for i in tqdm(range(0, len(clips), batch_size), desc=str(kwargs.get("num_beams")), leave=False):
        feats = whisper.features(loaded.processor, [load_audio(c) for c in clips[i:i + batch_size]])
        t0 = time.perf_counter()
        with torch.inference_mode():
            ids = loaded.model.generate(input_features=feats, do_sample=False, **kwargs)
        seconds += time.perf_counter() - t0
        ids = ids.sequences if hasattr(ids, "sequences") else ids
        texts += [t.strip() for t in loaded.processor.batch_decode(ids, skip_special_tokens=True)]
    return texts, seconds


def leaderboard_errors(references: list[str], hypotheses: list[str]) -> list[tuple[int, int]]:
    """(edits, reference words) per utterance after Whisper's English normalizer alone (no digit join)."""
    out, normalizer = [], EnglishTextNormalizer()
    for r, h in zip(references, hypotheses, strict=True):
        r, h = (" ".join(normalizer(t).split()) for t in (r, h))
        m = jiwer.process_words(r, h) if r else None
        out.append((m.substitutions + m.deletions + m.insertions, m.hits + m.substitutions + m.deletions) if m else (0, 0))
    return out


SCORINGS = {"eval (digits spelled out)": lambda refs, hyps: utterance_errors(refs, hyps, "en"),
            "leaderboard normalizer": leaderboard_errors}


def main() -> int:
    args, sets = decoding_study(__doc__, "research/decoding/hf_beams.json")
    started = time.time()
    loaded = whisper.load("tiny.en")
    results, transcripts = {}, {}
    for ds in sets:
        refs = [c.text for c in ds.clips]
        texts, seconds = {}, {}
        for label, options in OURS.items():
            r = evaluate_dataset(loaded, ds, progress=True, options=options)
            texts[label], seconds[label] = [t["hypothesis"] for t in r.transcripts], r.audio_s / r.rtfx
        for label, kwargs in THEIRS.items():
            texts[label], seconds[label] = generate_texts(loaded, ds.clips, kwargs)
        results[ds.name] = {}
        for scoring, score in SCORINGS.items():
            errors = {label: score(refs, t) for label, t in texts.items()}
            base = errors["liteasr greedy"]
            results[ds.name][scoring] = {}
            for label, errs in errors.items():
                d = paired_bootstrap(base, errs)
                results[ds.name][scoring][label] = {
                    "wer": pooled_wer(errs), "relative": -d.delta / pooled_wer(base), "seconds": seconds[label],
                    "minus_liteasr_greedy": {"delta": d.delta, "low": d.low, "high": d.high}}
        transcripts[ds.name] = [{"reference": r, **{label: t[i] for label, t in texts.items()}}
                                for i, r in enumerate(refs)]
    payload = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv),
               "threads": torch.get_num_threads(), "samples": args.samples,
               "results": results, "transcripts": transcripts, "minutes": (time.time() - started) / 60}
    write_json(args.json, payload)
    names = [ds.name for ds in sets]
    for scoring in SCORINGS:
        print(f"\nScored with {scoring}: WER (vs liteasr greedy [95% CI]; relative)\n")
        print("| decoding | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
        for label in texts:
            cells = []
            for n in names:
                r = results[n][scoring][label]
                m = r["minus_liteasr_greedy"]
                cells.append(f"{r['wer']:.2f} ({m['delta']:+.2f} [{m['low']:+.2f}, {m['high']:+.2f}]; "
                             f"{100 * r['relative']:.1f}% lower)")
            print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
