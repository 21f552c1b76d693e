"""Evaluate several models side by side on several datasets; one JSON object and one table row per model."""

from __future__ import annotations

from dataclasses import asdict

from liteasr import runtime
from liteasr.checkpoint import calibration_hashes
from liteasr.data.audio import Dataset, audio_hash, read_dataset, sample, transcribed
from liteasr.decoding.transcribe import DecodingOptions
from liteasr.errors import UserError
from liteasr.evaluation.bench import encoder_latency
from liteasr.evaluation.evaluate import dataset_language, evaluate_dataset, paired_bootstrap, pooled_wer
from liteasr.planning.flops import encoder_cost


def load_eval_sets(data: list[str], samples: int | None = None, seed: int = 0,
                   columns: tuple[str, str, str | None] = ("audio", "text", None)) -> list[Dataset]:
    sets = [read_dataset(d, *columns) for d in data]
    for s in sets:
        s.clips = sample(transcribed(s), samples, seed)
    return split_languages(sets)


def split_languages(sets: list[Dataset]) -> list[Dataset]:
    """One dataset per language: a set whose clips are in several languages becomes `NAME:LANG` sets, so
    that each language is scored (and reported) on its own."""
    out = []
    for ds in sets:
        languages = sorted({c.language for c in ds.clips}, key=str)
        if len(languages) <= 1:
            out.append(ds)
            continue
        out += [Dataset(f"{ds.name}:{lang}", [c for c in ds.clips if c.language == lang]) for lang in languages]
    return out


def evaluate_models(models: list[str], data: list[str] | list[Dataset], device="cpu", dtype=None,
                    batch_size: int = 8, samples: int | None = None, seed: int = 0,
                    latency: bool = True, progress: bool = True, attention: str = "auto",
                    options: DecodingOptions | list[DecodingOptions | None] | None = None,
                    columns: tuple[str, str, str | None] = ("audio", "text", None)) -> list[dict]:
    """Every model on every dataset (one per language), ΔWER of each against the first with paired
    bootstrap intervals; each dataset's language is forced (see evaluate.evaluate_dataset). `options`: for
    every model, or one per model (the same model may then appear twice, e.g. on two encoder windows).
    `columns`: the audio, text and language columns of Hugging Face datasets among `data` (as `eval`'s
    --audio-column, --text-column, --language-column)."""
    per_model = options if isinstance(options, list) else [options] * len(models)
    if len(per_model) != len(models):
        raise ValueError("one DecodingOptions (or None) per model")
    import torch

    if data and isinstance(data[0], Dataset):
        sets = split_languages(data)
    else:
        sets = load_eval_sets(data, samples, seed, columns)
    loaded_models, eval_hashes = [], None
    first: dict[str, list] = {}  # per dataset, the first model's (errors, words) per utterance
    for spec in models:
        loaded = runtime.load(spec, device=device, dtype=dtype or torch.float32, attention=attention)
        calibrated_on = calibration_hashes(loaded.path)
        if calibrated_on:
            eval_hashes = eval_hashes or {audio_hash(c): c.path for ds in sets for c in ds.clips}
            overlap = sorted(str(p) for h, p in eval_hashes.items() if h in calibrated_on)
            if overlap:
                raise UserError(f"{spec} was calibrated on {len(overlap)} of the evaluation clips (e.g. {overlap[0]})")
        loaded_models.append(loaded)
    if latency:  # all models interleaved (A B C A B C ...): one after another, a busy machine skews them
        timings = {b: encoder_latency(loaded_models, batch_size=b, repeats=3, warmup=1) for b in (1, 8)}
    # Utterances are pooled across datasets only within one language: languages are reported apart.
    one_language = len({_language(ds) for ds in sets}) == 1
    results = []
    first_all: list = []  # the first model's (errors, words) over every utterance of every set
    for i, (spec, loaded) in enumerate(zip(models, loaded_models)):
        cost = encoder_cost(runtime.architecture(loaded))
        entry = {"model": str(spec), "encoder_params": cost.params, "encoder_linear_params": cost.linear_params,
                 "encoder_gflops": cost.gflops, "datasets": {}}
        if latency:
            entry["encoder_ms"] = {f"batch_{b}": t[i].median_ms for b, t in timings.items()}
        pooled = []
        for ds in sets:
            result = evaluate_dataset(loaded, ds, batch_size=batch_size, progress=progress, options=per_model[i])
            entry["datasets"][ds.name] = result.summary()
            errors = [(t["errors"], t["words"]) for t in result.transcripts]
            pooled += errors
            if ds.name in first:  # every model after the first: ΔWER against it, paired over utterances
                entry["datasets"][ds.name]["delta_wer"] = asdict(paired_bootstrap(first[ds.name], errors))
            else:
                first[ds.name] = errors
        if len(sets) > 1 and one_language:  # one corpus of every utterance: a tighter interval than one set
            entry["all_sets"] = {"wer": pooled_wer(pooled),
                                 "n": len(pooled)}
            if first_all:
                entry["all_sets"]["delta_wer"] = asdict(paired_bootstrap(first_all, pooled))
            else:
                first_all = pooled
        wers = [d["wer"] for d in entry["datasets"].values()]
        entry["average_wer"] = sum(wers) / len(wers) if wers else float("nan")
        results.append(entry)
    return results


def _language(ds: Dataset) -> str:
    return dataset_language(ds) or "en"


def print_table(results: list[dict]) -> None:
    """One row per model; per dataset its error rate (WER, or CER for languages written without spaces),
    ΔWER against the first model, and language-ID errors where the model detects languages."""
    names = list(results[0]["datasets"]) if results else []
    first = results[0]["datasets"] if results else {}
    label = lambda n: f"{n[:14]} {first[n].get('metric', 'wer').upper()}"  # noqa: E731
    lid = any(d.get("lid_checked") for r in results for d in r["datasets"].values())
    head = f"{'model':<34}{'enc params':>12}{'GFLOPs':>9}" \
        + "".join(f"{label(n):>19}{'Δ [95% CI]':>24}" for n in names) \
        + f"{'avg':>9}{'RTFx':>8}" + (f"{'enc ms b1':>11}" if results and "encoder_ms" in results[0] else "") \
        + (f"{'LID err':>10}" if lid else "")
    print(head)
    for r in results:
        name = r["model"] if len(r["model"]) <= 33 else "..." + r["model"][-30:]
        rtfx = sum(d["audio_s"] for d in r["datasets"].values()) / max(
            sum(d["audio_s"] / d["rtfx"] for d in r["datasets"].values()), 1e-9)
        row = f"{name:<34}{r['encoder_params'] / 1e6:>11.2f}M{r['encoder_gflops']:>9.2f}"
        row += "".join(f"{r['datasets'][n]['wer']:>19.2f}{_delta(r['datasets'][n].get('delta_wer')):>24}" for n in names)
        row += f"{r['average_wer']:>9.2f}{rtfx:>8.1f}"
        if "encoder_ms" in r:
            row += f"{r['encoder_ms']['batch_1']:>11.1f}"
        if lid:
            errors = sum(d.get("lid_errors") or 0 for d in r["datasets"].values())
            checked = sum(d.get("lid_checked") or 0 for d in r["datasets"].values())
            row += f"{f'{errors}/{checked}' if checked else '-':>10}"
        print(row)
    if results and "all_sets" in results[0]:
        print(f"all {results[0]['all_sets']['n']} utterances as one corpus: " + "; ".join(
            f"{r['model']} WER {r['all_sets']['wer']:.2f} {_delta(r['all_sets'].get('delta_wer'))}".rstrip()
            for r in results))
    languages = {n: first[n].get("language") for n in names}
    if any(languages.values()):
        print("languages (forced from the data; LID err: clips whose detected language differs): "
              + ", ".join(f"{n} {lang or 'detected'}" for n, lang in languages.items()))
    for n in names:  # a set decoded in several detected languages: language-ID mistakes are in its WER
        mixed = [(r["model"], r["datasets"][n].get("decoded_languages") or {}) for r in results]
        if any(len(counts) > 1 for _, counts in mixed):
            print(f"{n}: no language forced, so each clip was decoded in the language detected for it ("
                  + "; ".join(f"{model}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                              for model, counts in mixed if counts)
                  + "): language-ID mistakes count as word errors there; state `language` in its manifest, or "
                    "pass --language, to force it and count them apart")


def _delta(d: dict | None) -> str:
    return "" if d is None else f"{d['delta']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"
