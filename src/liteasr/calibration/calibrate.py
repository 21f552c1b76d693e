"""Run the encoder over calibration clips and collect CovarianceStats (audio -> statistics)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from liteasr.calibration.stats import CovarianceStats, LayerStats, StatsCollector
from liteasr.data.audio import SAMPLE_RATE, Clip, audio_hash, change_speed, load_audio, windows
from liteasr.distributed import Group, blocks, current, sum_in_shard_order
from liteasr.errors import UserError
from liteasr.models import whisper


def model_hash(model: torch.nn.Module) -> str:
    """Fingerprint of the encoder projections, so statistics are never applied to another model."""
    h = hashlib.sha256()
    for key, module in whisper.encoder_linears(model).items():
        w = module.weight.detach().float().cpu()
        h.update(key.encode())
        h.update(str(tuple(w.shape)).encode())
        h.update(w.flatten()[:: max(1, w.numel() // 4096)].numpy().tobytes())  # a strided sample is enough
    return h.hexdigest()[:16]


batches = blocks  # refine/ batches calibration windows the same way

PACKINGS = ("pad", "pack", "mix")
# Measured on tiny.en (research/allocation/allocation.md): at 75% of linear parameters, mix +1.0 WER,
# pad +2.8, pack +2.9 against the base model.
DEFAULT_PACKING = "mix"


def calibration_windows(clips: list[Clip], packing: str = DEFAULT_PACKING, progress: bool = False,
                        speeds: tuple[float, ...] = (1.0,)) -> Iterator[np.ndarray]:
    """Audio windows the encoder sees during calibration.

    `pad`: each clip alone, padded to 30 s by the feature extractor (as Whisper transcribes short
    clips, so padding frames are part of inference); `pack`: clips concatenated into full 30 s
    windows (speech only); `mix`: even-numbered clips padded, odd-numbered clips packed.
    `speeds`: each clip is seen once at every speed factor (audio.change_speed), each version packed
    or padded as a clip of its own.
    """
    if packing not in PACKINGS:
        raise UserError(f"packing must be one of {', '.join(PACKINGS)}, got {packing!r}")
    size = whisper.WINDOW_SECONDS * SAMPLE_RATE
    buffer = np.zeros(0, dtype=np.float32)
    i = 0
    for clip in tqdm(clips, desc="calibrating", unit="clip", disable=not progress):
        original = load_audio(clip)
        for speed in speeds:
            audio = change_speed(original, speed)
            if packing == "pad" or (packing == "mix" and i % 2 == 0):
                yield from windows(audio)
            else:
                buffer = np.concatenate([buffer, audio])
                while len(buffer) >= size:
                    yield buffer[:size]
                    buffer = buffer[size:]
            i += 1
    if len(buffer):
        yield buffer


# Windows per shard. Shards are fixed pieces of the window stream: whatever the number of processes,
# each shard's sums are computed alone and added to the total in shard order (bit-identical results).
SHARD_WINDOWS = 16


def calibrate(loaded: whisper.LoadedModel, clips: list[Clip], batch_size: int = 8,
              progress: bool = True, packing: str = DEFAULT_PACKING, shard: tuple[int, int] = (0, 1),
              shard_windows: int = SHARD_WINDOWS, group: Group | None = None,
              speeds: tuple[float, ...] = (1.0,)) -> CovarianceStats:
    """Statistics of every encoder projection's outputs over `clips` (long clips split into 30 s windows).

    Under torchrun each process encodes every world-th shard of SHARD_WINDOWS windows (every process
    reads all the audio, which is cheap next to the encoder). `shard=(I, N)` keeps only the shards
    k with k % N == I, for machines that calibrate apart and `liteasr merge-stats` later."""
    group = group or current()
    model = loaded.model
    param = next(model.parameters())
    linears = whisper.encoder_linears(model)
    total = {k: LayerStats.empty(m.out_features).packed() for k, m in linears.items()}
    index, count = shard
    stream = blocks(calibration_windows(clips, packing, progress and group.is_main, speeds), shard_windows)
    mine = (windows_ for k, windows_ in enumerate(stream) if k % count == index)
    n_windows = 0
    for round_ in blocks(mine, group.world):  # shard round * world + rank is this process's
        n_windows += sum(len(s) for s in round_)
        present = group.rank < len(round_)
        collector = StatsCollector(linears)
        try:
            for batch in blocks(round_[group.rank] if present else [], batch_size):
                whisper.encoder_output(model, whisper.features(loaded.processor, batch, param.device, param.dtype))
        finally:
            partial = collector.close()
        sum_in_shard_order(group, ((k, s.packed()) for k, s in partial.items()), total, present)
    layers = {k: LayerStats.from_packed(t, linears[k].out_features) for k, t in total.items()}
    meta = {"model": loaded.name, "model_hash": model_hash(model), "clips": len(clips), "windows": n_windows,
            "packing": packing, "speeds": list(speeds),
            # lets evaluation refuse clips the model was calibrated on
            "clip_hashes": sorted(audio_hash(c) for c in clips)}
    if count > 1:
        meta["shard"] = f"{index}/{count}"
    return CovarianceStats(layers, meta)
