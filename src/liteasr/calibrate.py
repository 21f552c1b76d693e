"""Run the encoder over calibration clips and collect CovarianceStats (audio -> statistics)."""

from __future__ import annotations

import hashlib

import torch
from tqdm.auto import tqdm

from . import whisper
from .audio import Clip, audio_hash, load_audio, windows
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


def calibrate(loaded: whisper.LoadedModel, clips: list[Clip], batch_size: int = 8,
              progress: bool = True) -> CovarianceStats:
    """Statistics of every encoder projection's outputs over `clips` (long clips split into 30 s windows)."""
    model = loaded.model
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    collector = StatsCollector(whisper.encoder_linears(model))
    pending: list = []
    n_windows = 0

    def flush():
        nonlocal n_windows
        feats = whisper.features(loaded.processor, pending, device=device, dtype=dtype)
        whisper.encoder_output(model, feats)
        n_windows += len(pending)
        pending.clear()

    try:
        for clip in tqdm(clips, desc="calibrating", unit="clip", disable=not progress):
            pending.extend(windows(load_audio(clip.path)))
            while len(pending) >= batch_size:
                rest = pending[batch_size:]
                del pending[batch_size:]
                flush()
                pending.extend(rest)
        if pending:
            flush()
    finally:
        layers = collector.close()
    meta = {"model": loaded.name, "model_hash": model_hash(model), "clips": len(clips), "windows": n_windows,
            # lets evaluation refuse clips the model was calibrated on
            "clip_hashes": sorted(audio_hash(c.path) for c in clips)}
    return CovarianceStats(layers, meta)
