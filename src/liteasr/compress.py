"""Apply a rank plan to a model: swap dense projections for LowRankLinear (plan -> compressed model)."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from . import whisper
from .errors import UserError
from .lowrank import factorize
from .plan import RankPlan, ThresholdRule
from .stats import CovarianceStats


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    return {k: (m.in_features, m.out_features) for k, m in whisper.encoder_linears(model).items()}


def spectra(stats: CovarianceStats, progress: bool = True) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Eigen-decomposition of every layer's output covariance, computed once and shared by plans."""
    return {k: s.spectrum() for k, s in tqdm(stats.layers.items(), desc="eigendecomposition", disable=not progress)}


def check_stats(model: torch.nn.Module, stats: CovarianceStats) -> None:
    from .calibrate import model_hash

    expected = shapes(model)
    got = {k: s.sum.numel() for k, s in stats.layers.items()}
    if got.keys() != expected.keys() or any(got[k] != expected[k][1] for k in got):
        raise UserError("statistics do not match this model's encoder layers (collected on another model?)")
    if stats.meta.get("model_hash") not in (None, model_hash(model)):
        raise UserError(f"statistics were collected on another model ({stats.meta.get('model', '?')})")


def threshold_plan(model, stats: CovarianceStats, rule: ThresholdRule, eig=None) -> RankPlan:
    eig = eig or spectra(stats, progress=False)
    return rule.plan({k: v[0] for k, v in eig.items()}, shapes(model), whisper.is_attention)


def compress_(model: torch.nn.Module, stats: CovarianceStats, plan: RankPlan, eig=None):
    """Factor every projection the plan gives a rank; returns the lite-whisper model."""
    check_stats(model, stats)
    linears = whisper.encoder_linears(model)
    unknown = set(plan.layers) - set(linears)
    if unknown:
        raise UserError(f"rank plan names layers this model does not have: {', '.join(sorted(unknown))}")
    for key, layer in plan.layers.items():
        if layer.rank is None:
            continue
        _, vectors = eig[key] if eig else stats.layers[key].spectrum()
        whisper.replace_linear(model, key, factorize(linears[key], stats.layers[key].mean, vectors, layer.rank))
    return whisper.to_lite(model)


def target_plan(loaded, stats: CovarianceStats, eig, budget, damage: str = "sensitivity", clips=None,
                multiple: int = 16, sensitivity_clips: int = 4, progress: bool = True) -> RankPlan:
    """Ranks meeting `budget` (allocate.Budget) with the least predicted damage."""
    from .allocate import allocate, measure_sensitivity
    from .audio import load_audio, windows
    from .flops import encoder_cost

    model = loaded.model
    sensitivity = None
    if damage == "sensitivity":
        if not clips:
            raise UserError("the sensitivity damage model needs calibration audio (use --calibration, not --stats)")
        audios = [w for c in clips[:sensitivity_clips] for w in windows(load_audio(c.path))][:sensitivity_clips]
        param = next(model.parameters())
        feats = whisper.features(loaded.processor, audios, device=param.device, dtype=param.dtype)
        sensitivity = measure_sensitivity(loaded, stats, eig, feats, multiple=multiple, progress=progress)
    base = encoder_cost(model)
    return allocate(eig, shapes(model), budget, damage, sensitivity, multiple,
                    frames=model.config.max_source_positions, fixed_flops=base.attention_flops + base.conv_flops)
