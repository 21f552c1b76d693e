"""Apply a rank plan to a model: swap dense projections for LowRankLinear (plan -> compressed model)."""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from liteasr.calibration.stats import CovarianceStats
from liteasr.errors import UserError
from liteasr.factorize.lowrank import factorize
from liteasr.models import whisper
from liteasr.models.hf.configuration_lite_whisper import LiteWhisperConfig
from liteasr.models.hf.modeling_lite_whisper import LiteWhisperForConditionalGeneration
from liteasr.planning.damage import DEFAULT_DAMAGE
from liteasr.planning.flops import best_attention_modes
from liteasr.planning.plan import RankPlan, ThresholdRule


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    return {k: (m.in_features, m.out_features) for k, m in whisper.encoder_linears(model).items()}


def spectra(stats: CovarianceStats, progress: bool = True) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Eigen-decomposition of every layer's output covariance, computed once and shared by plans.

    Under torchrun each layer is decomposed by one process (balanced by d^3) and broadcast."""
    from liteasr.distributed import balance, current

    group = current()
    keys = list(stats.layers)
    owners = balance([stats.layers[k].sum.numel() ** 3 for k in keys], group.world)
    owner = {keys[i]: rank for rank, tasks in enumerate(owners) for i in tasks}
    eig = {}
    for key in tqdm(keys, desc="eigendecomposition", disable=not (progress and group.is_main)):
        s = stats.layers[key]
        if owner[key] == group.rank:
            values, vectors = s.spectrum()
        else:
            d = s.sum.numel()
            values, vectors = torch.empty(d, dtype=torch.float64), torch.empty(d, d, dtype=torch.float64)
        eig[key] = group.broadcast(values, owner[key]), group.broadcast(vectors, owner[key])
    return eig


def check_stats(model: torch.nn.Module, stats: CovarianceStats) -> None:
    from liteasr.calibration.calibrate import model_hash

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
    return to_lite(model)


def probe_selection(clips: list, n: int) -> list:
    """The `n` calibration clips the measured damage models probe: taken in turn from each language the
    clips' manifests state (unstated counts as one), in order within each. A calibration of one language
    probes its first `n` clips; one of several probes every language alike, where taking the first `n` would
    probe only the first source's (drawn sources come one after another)."""
    groups: dict = {}
    for c in clips:
        groups.setdefault(c.language, []).append(c)
    turns = [group[i] for i in range(max(map(len, groups.values()), default=0)) for group in groups.values()
             if i < len(group)]
    return turns[:n]


def measure_damage(loaded, stats: CovarianceStats, eig, damage: str = DEFAULT_DAMAGE, clips=None,
                   multiple: int = 16, probe_clips: int = 8, probe_points: int = 6, progress: bool = True):
    """Predicted damage of every candidate rank (damage.py); measured models probe `probe_clips`
    calibration clips (probe_selection: every language alike), each padded as at inference, at
    `probe_points` ranks per layer."""
    from liteasr.data.audio import load_audio, windows
    from liteasr.planning.damage import MEASURED, TruncationProbe, candidates, damage_table

    if multiple <= 0:
        raise UserError(f"rank multiple must be positive, got {multiple}")
    if probe_clips <= 0:
        raise UserError(f"probe clips must be positive, got {probe_clips}")
    options = {k: candidates(*s, multiple) for k, s in shapes(loaded.model).items()}
    probe = None
    if damage in MEASURED:
        if not clips:
            raise UserError(f"the {damage} damage model needs calibration audio (use --calibration, not --stats)")
        pieces = [(w, c.language) for c in probe_selection(clips, probe_clips)
                  for w in windows(load_audio(c))][:probe_clips]
        probe = TruncationProbe(loaded, [w for w, _ in pieces], "decoder" if damage == "decoder" else "encoder",
                                languages=[lang for _, lang in pieces])
    return damage_table(damage, eig, options, stats, probe, probe_points, progress)


def target_plan(loaded, stats: CovarianceStats, eig, budget, damage: str = DEFAULT_DAMAGE, clips=None,
                multiple: int = 16, table=None, probe_clips: int = 8, progress: bool = True) -> RankPlan:
    """Ranks meeting `budget` (allocate.Budget) with the least damage predicted by `damage`; pass a
    `table` from measure_damage to allocate several budgets from one measurement."""
    from liteasr.planning.allocate import allocate
    from liteasr.planning.flops import encoder_cost

    if table is None:
        table = measure_damage(loaded, stats, eig, damage, clips, multiple, probe_clips, progress=progress)
    model = loaded.model
    base = encoder_cost(model)
    return allocate(table, shapes(model), budget, eig, damage, frames=model.config.max_source_positions,
                    fixed_flops=base.attention_flops + base.conv_flops)


def to_lite(model: nn.Module) -> LiteWhisperForConditionalGeneration:
    """Wrap a Whisper whose encoder projections were swapped in place into a lite-whisper model."""
    values = model.config.to_dict()
    for key in ("model_type", "architectures", "auto_map", "transformers_version", "low_rank_config"):
        values.pop(key, None)
        values.pop("attention_modes", None)
    # Attention in reduced dimension only where it lowers FLOPs, recorded so loading reproduces it.
    config = LiteWhisperConfig(low_rank_config=whisper.low_rank_config(model), attention_modes=best_attention_modes(model),
                               **values)
    config.architectures = ["LiteWhisperForConditionalGeneration"]
    with torch.device("meta"):
        lite = LiteWhisperForConditionalGeneration(config)
    lite.load_state_dict(model.state_dict(), strict=True, assign=True)
    lite.tie_weights()
    lite.generation_config = model.generation_config
    return lite.eval()
