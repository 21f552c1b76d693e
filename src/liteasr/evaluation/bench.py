"""Measured encoder latency: models timed in one process, interleaved (A B A B ...), after warm-up."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch


@dataclass
class Timing:
    median_ms: float
    spread_ms: float  # half the interquartile range
    runs: int


def _summary(samples: list[float]) -> Timing:
    ms = sorted(s * 1e3 for s in samples)
    q = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
    return Timing(statistics.median(ms), (q[2] - q[0]) / 2, len(ms))


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _placement(structure: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where a model's encoder takes its features: its weights' device and dtype; CPU float32 for runtimes
    whose structure holds no weights (ONNX Runtime, CTranslate2)."""
    param = next((p for p in structure.parameters() if not p.is_meta), None)
    return (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)


def _encoder(model):
    """(run one encoder forward on features, the model's structure): PyTorch models, loaded models of
    any runtime (runtime.load)."""
    from liteasr.models import whisper

    if hasattr(model, "encode"):  # a runtime: PyTorch (whisper.LoadedModel), ONNX Runtime, CTranslate2
        return model.encode, model.architecture
    module = model if isinstance(model, torch.nn.Module) else model.model  # or a whisper.LoadedModel
    return (lambda features: whisper.encode(module, features)), module  # as transcription runs it


def encoder_latency(models: list, batch_size: int = 1, repeats: int = 10,
                    warmup: int = 2, seed: int = 0, frames: list[int] | None = None) -> list[Timing]:
    """Per-window encoder latency (ms per window: 30 s, or `frames[i]` mel frames for model i) of each
    model on the same random features, run as transcription runs it (PyTorch on CPU: one window at a time,
    whisper.encode)."""
    encoders = [_encoder(m) for m in models]
    first = encoders[0][1]
    placements = [_placement(s) for _, s in encoders]
    n_mels = first.config.num_mel_bins
    frames = frames or [2 * first.config.max_source_positions] * len(models)
    gen = torch.Generator().manual_seed(seed)
    full = torch.randn(batch_size, n_mels, max(frames), generator=gen)
    # the same features for every model, each in its own device and dtype (models may differ in both)
    feats = [full[..., :f].to(*placement).contiguous() for f, placement in zip(frames, placements)]
    samples: list[list[float]] = [[] for _ in models]
    with torch.inference_mode():
        for it in range(warmup + repeats):
            for i, (encode, _) in enumerate(encoders):
                device = placements[i][0]
                _sync(device)
                t0 = time.perf_counter()
                encode(feats[i])
                _sync(device)
                if it >= warmup:
                    samples[i].append((time.perf_counter() - t0) / batch_size)
    return [_summary(s) for s in samples]


def transcription_latency(loaded: list, audios: list, batch_size: int = 8, repeats: int = 3,
                          options: list | None = None) -> list[Timing]:
    """Seconds to transcribe `audios` (features + generate + decode), models interleaved, one warm-up each;
    `options[i]`: model i's DecodingOptions."""
    from liteasr.decoding.transcribe import transcribe

    samples: list[list[float]] = [[] for _ in loaded]
    for it in range(repeats + 1):
        for i, m in enumerate(loaded):
            seconds = transcribe(m, audios, batch_size=batch_size, progress=False, warmup=False,
                                 options=options[i] if options else None).seconds
            if it > 0:
                samples[i].append(seconds)
    return [_summary(s) for s in samples]
