"""Sequential calibration: compress layer by layer, each layer's statistics collected on the outputs
of the already-compressed earlier layers, so every factorization sees the error it inherits
(as GPTQ and SVD-LLM do). Ranks come from a plan; only the factors change."""

from __future__ import annotations

import copy

from tqdm.auto import tqdm

from . import whisper
from .audio import Clip, audio_hash
from .calibrate import DEFAULT_PACKING, batches, calibration_windows, model_hash
from .lowrank import factorize
from .plan import RankPlan
from .stats import CovarianceStats, StatsCollector


def compress_sequential(loaded: whisper.LoadedModel, clips: list[Clip], plan: RankPlan, batch_size: int = 8,
                        packing: str = DEFAULT_PACKING, progress: bool = True):
    """(lite model, statistics as seen by each layer under its compressed predecessors)."""
    model = copy.deepcopy(loaded.model)
    param = next(model.parameters())
    hidden = [whisper.embed(model, whisper.features(loaded.processor, b, param.device, param.dtype))
              for b in batches(calibration_windows(clips, packing, progress), batch_size)]
    seen = {}
    for index, layer in enumerate(tqdm(whisper.encoder_layers(model), desc="sequential layers", disable=not progress)):
        modules = {k: m for k, m in whisper.encoder_linears(model).items() if whisper.split_key(k)[0] == index}
        collector = StatsCollector(modules)
        try:
            for h in hidden:
                whisper.run_layer(layer, h)
        finally:
            stats = collector.close()
        seen.update(stats)
        for key, dense in modules.items():
            rank = plan.layers[key].rank
            if rank is not None:
                whisper.replace_linear(model, key, factorize(dense, stats[key].mean, stats[key].spectrum()[1], rank))
        hidden = [whisper.run_layer(layer, h) for h in hidden]  # inputs of the next layer, compressed path
    meta = {"model": loaded.name, "model_hash": model_hash(loaded.model), "clips": len(clips),
            "windows": sum(h.shape[0] for h in hidden), "packing": packing, "sequential": True,
            "clip_hashes": sorted(audio_hash(c) for c in clips)}
    return whisper.to_lite(model), CovarianceStats(seen, meta)
