"""Evaluate several models side by side on several datasets; one JSON object and one table row per model."""

from __future__ import annotations

from . import whisper
from .audio import Dataset, audio_hash, read_dataset, sample
from .checkpoint import calibration_hashes
from .errors import UserError
from .bench import encoder_latency
from .evaluate import evaluate_dataset
from .flops import encoder_cost


def load_eval_sets(data: list[str], samples: int | None = None, seed: int = 0,
                   columns: tuple[str, str] = ("audio", "text")) -> list[Dataset]:
    sets = [read_dataset(d, *columns) for d in data]
    for s in sets:
        s.clips = sample([c for c in s.clips if c.text is not None], samples, seed)
    return sets


def evaluate_models(models: list[str], data: list[str] | list[Dataset], device="cpu", dtype=None,
                    batch_size: int = 8, samples: int | None = None, seed: int = 0,
                    latency: bool = True, progress: bool = True, attention: str = "auto") -> list[dict]:
    import torch

    sets = data if data and isinstance(data[0], Dataset) else load_eval_sets(data, samples, seed)
    results, eval_hashes = [], None
    for spec in models:
        loaded = whisper.load(spec, device=device, dtype=dtype or torch.float32, attention=attention)
        calibrated_on = calibration_hashes(loaded.path)
        if calibrated_on:
            eval_hashes = eval_hashes or {audio_hash(c): c.path for ds in sets for c in ds.clips}
            overlap = sorted(str(p) for h, p in eval_hashes.items() if h in calibrated_on)
            if overlap:
                raise UserError(f"{spec} was calibrated on {len(overlap)} of the evaluation clips (e.g. {overlap[0]})")
        cost = encoder_cost(loaded.model)
        entry = {"model": str(spec), "encoder_params": cost.params, "encoder_linear_params": cost.linear_params,
                 "encoder_gflops": cost.gflops, "datasets": {}}
        if latency:
            entry["encoder_ms"] = {f"batch_{b}": encoder_latency([loaded.model], batch_size=b, repeats=3, warmup=1)[0].median_ms
                                   for b in (1, 8)}
        for ds in sets:
            entry["datasets"][ds.name] = evaluate_dataset(loaded, ds, batch_size=batch_size, progress=progress).summary()
        wers = [d["wer"] for d in entry["datasets"].values()]
        entry["average_wer"] = sum(wers) / len(wers) if wers else float("nan")
        results.append(entry)
    return results


def print_table(results: list[dict]) -> None:
    names = list(results[0]["datasets"]) if results else []
    head = f"{'model':<34}{'enc params':>12}{'GFLOPs':>9}" + "".join(f"{n[:14] + ' WER':>19}" for n in names) \
        + f"{'avg WER':>9}{'RTFx':>8}" + (f"{'enc ms b1':>11}" if results and "encoder_ms" in results[0] else "")
    print(head)
    for r in results:
        name = r["model"] if len(r["model"]) <= 33 else "..." + r["model"][-30:]
        rtfx = sum(d["audio_s"] for d in r["datasets"].values()) / max(
            sum(d["audio_s"] / d["rtfx"] for d in r["datasets"].values()), 1e-9)
        row = f"{name:<34}{r['encoder_params'] / 1e6:>11.2f}M{r['encoder_gflops']:>9.2f}"
        row += "".join(f"{r['datasets'][n]['wer']:>19.2f}" for n in names)
        row += f"{r['average_wer']:>9.2f}{rtfx:>8.1f}"
        if "encoder_ms" in r:
            row += f"{r['encoder_ms']['batch_1']:>11.1f}"
        print(row)
