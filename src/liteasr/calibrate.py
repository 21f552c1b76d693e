"""Run the encoder over calibration clips and collect CovarianceStats (audio -> statistics)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from . import whisper
from .audio import SAMPLE_RATE, Clip, audio_hash, load_audio, windows
from .errors import UserError
from .stats import CovarianceStats, StatsCollector


def model_hash(model: torch.nn.Module) -> str:
    """Fingerprint of the encoder projections, so statistics are never applied to another model."""
    h = hashlib.sha256()
    for key, module in whisper.encoder_linears(model).items():
        w = module.weight.detach().float().cpu()
        h.update(key.encode())
        h.update(str(tuple(w.shape)).encode())
        h.update(w.flatten()[:: max(1, w.numel() // 4096)].numpy().tobytes())  # a strided sample is enough
    return h.hexdigest()[:16]


PACKINGS = ("pad", "pack", "mix")
# Measured on tiny.en (benchmarks/allocation.md): at 75% of linear parameters, mix +1.0 WER,
# pad +2.8, pack +2.9 against the base model.
DEFAULT_PACKING = "mix"


def calibration_windows(clips: list[Clip], packing: str = DEFAULT_PACKING, progress: bool = False) -> Iterator[np.ndarray]:
    """Audio windows the encoder sees during calibration.

    `pad`: each clip alone, padded to 30 s by the feature extractor (as Whisper transcribes short
    clips, so padding frames are part of inference); `pack`: clips concatenated into full 30 s
    windows (speech only); `mix`: even-numbered clips padded, odd-numbered clips packed.
    """
    if packing not in PACKINGS:
        raise UserError(f"packing must be one of {', '.join(PACKINGS)}, got {packing!r}")
    size = whisper.WINDOW_SECONDS * SAMPLE_RATE
    buffer = np.zeros(0, dtype=np.float32)
    for i, clip in enumerate(tqdm(clips, desc="calibrating", unit="clip", disable=not progress)):
        audio = load_audio(clip.path)
        if packing == "pad" or (packing == "mix" and i % 2 == 0):
            yield from windows(audio)
            continue
        buffer = np.concatenate([buffer, audio])
        while len(buffer) >= size:
            yield buffer[:size]
            buffer = buffer[size:]
    if len(buffer):
        yield buffer


def batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def calibrate(loaded: whisper.LoadedModel, clips: list[Clip], batch_size: int = 8,
              progress: bool = True, packing: str = DEFAULT_PACKING) -> CovarianceStats:
    """Statistics of every encoder projection's outputs over `clips` (long clips split into 30 s windows)."""
    model = loaded.model
    param = next(model.parameters())
    collector = StatsCollector(whisper.encoder_linears(model))
    n_windows = 0
    try:
        for batch in batches(calibration_windows(clips, packing, progress), batch_size):
            whisper.encoder_output(model, whisper.features(loaded.processor, batch, param.device, param.dtype))
            n_windows += len(batch)
    finally:
        layers = collector.close()
    meta = {"model": loaded.name, "model_hash": model_hash(model), "clips": len(clips), "windows": n_windows,
            "packing": packing,
            # lets evaluation refuse clips the model was calibrated on
            "clip_hashes": sorted(audio_hash(c.path) for c in clips)}
    return CovarianceStats(layers, meta)
