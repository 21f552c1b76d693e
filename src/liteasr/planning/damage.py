"""Damage models: how much does truncating one projection to rank r hurt? (statistics -> damage table)

Allocation (allocate.py) needs, for every projection and candidate rank, a predicted damage. Models:

- `variance`:    discarded output variance, absolute (the paper's signal, compared across layers)
- `normalized`:  discarded fraction of each layer's output variance
- `sensitivity`: normalized discard times one measured factor per layer (the encoder-output error when
                 that layer alone is truncated at 99% kept variance)
- `encoder`:     measured at several ranks per layer: relative encoder-output error with that layer
                 alone truncated
- `decoder`:     measured at several ranks per layer: KL divergence of the decoder's next-token
                 distributions from the dense model's, teacher-forced on the dense model's own greedy
                 transcripts of calibration clips (no labels needed; the closest cheap proxy for WER)

Measured models probe a few ranks per layer and interpolate linearly in discarded variance between
them; damages of different layers are assumed to add.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from tqdm.auto import tqdm

from liteasr.distributed import Group, balance, current, gather_by_index
from liteasr.errors import UserError
from liteasr.factorize.lowrank import factorize
from liteasr.models import generation, whisper

DAMAGE_MODELS = ("encoder", "decoder", "sensitivity", "normalized", "variance")
MEASURED = ("decoder", "encoder", "sensitivity")
DEFAULT_DAMAGE = "encoder"  # chosen by the Pareto fronts in research/allocation/allocation.md

Rank = int | None  # None: dense
DamageTable = dict[str, dict[Rank, float]]  # projection key -> rank -> predicted damage


def candidates(d_in: int, d_out: int, multiple: int) -> list[Rank]:
    """Ranks worth considering, ascending; None (dense) last."""
    return [r for r in range(multiple, min(d_in, d_out) + 1, multiple) if r * (d_in + d_out) < d_in * d_out] + [None]


def discarded(eigenvalues: torch.Tensor, rank: Rank, normalized: bool) -> float:
    """Output variance a rank leaves out: absolute, or as a fraction of the layer's total."""
    tail = 0.0 if rank is None else float(eigenvalues[rank:].sum())
    if not normalized:
        return tail
    total = float(eigenvalues.sum())
    return tail / total if total > 0 else 0.0


class TruncationProbe:
    """Runs the encoder (and optionally the decoder) with one projection truncated, starting from
    cached inputs of that projection's encoder layer, and compares with the dense model."""

    def __init__(self, loaded: whisper.LoadedModel, audios: list[np.ndarray], metric: str, batch_size: int = 8,
                 languages: list[str | None] | None = None):
        """`languages`: each clip's language, for the teacher transcripts of the `decoder` metric (None:
        detected, as transcription does)."""
        if metric not in ("encoder", "decoder"):
            raise ValueError(metric)
        self.model = copy.deepcopy(loaded.model).eval()
        self.metric = metric
        param = next(self.model.parameters())
        self.batches = []  # per batch: inputs of every encoder layer, and what the dense model gives
        for start in range(0, len(audios), batch_size):
            chunk = audios[start : start + batch_size]
            feats = whisper.features(loaded.processor, chunk, param.device, param.dtype)
            hidden = [whisper.embed(self.model, feats)]
            for layer in whisper.encoder_layers(self.model):
                hidden.append(whisper.run_layer(layer, hidden[-1]))
            out = whisper.encoder_finish(self.model, hidden.pop())
            entry = {"inputs": hidden}
            if metric == "decoder":
                chunk_languages = (languages or [None] * len(audios))[start : start + batch_size]
                entry["ids"], entry["mask"] = generation.teacher_transcripts(loaded, feats, chunk_languages,
                                                                          samples=max(len(a) for a in chunk))
                entry["logp"] = whisper.next_token_log_probs(self.model, out, entry["ids"], entry["mask"])
            else:
                entry["reference"], entry["scale"] = out, float((out - out.mean((0, 1))).pow(2).sum())
            self.batches.append(entry)

    def damage(self, key: str, module: torch.nn.Module) -> float:
        """Damage with projection `key` replaced by `module` (the dense one is put back)."""
        index, _ = whisper.split_key(key)
        dense = whisper.encoder_linears(self.model)[key]
        whisper.replace_linear(self.model, key, module)
        try:
            layers = whisper.encoder_layers(self.model)[index:]
            total, weight = 0.0, 0.0
            for entry in self.batches:
                hidden = entry["inputs"][index]
                for layer in layers:
                    hidden = whisper.run_layer(layer, hidden)
                out = whisper.encoder_finish(self.model, hidden)
                if self.metric == "encoder":
                    total += float((out - entry["reference"]).pow(2).sum())
                    weight += entry["scale"]
                else:  # KL(dense || truncated) per transcript token
                    ref = entry["logp"]
                    logp = whisper.next_token_log_probs(self.model, out, entry["ids"], entry["mask"])
                    kl = (ref.exp() * (ref - logp)).sum(-1)
                    total += float(kl.double().sum())
                    weight += len(kl)
            return total / max(weight, 1e-300)
        finally:
            whisper.replace_linear(self.model, key, dense)


def probe_ranks(options: list[Rank], points: int) -> list[int]:
    """`points` ranks spread over a layer's candidates (always the smallest and the largest)."""
    ranks = [r for r in options if r is not None]
    if not ranks:
        return []
    picks = np.unique(np.linspace(0, len(ranks) - 1, min(points, len(ranks))).round().astype(int))
    return [ranks[i] for i in picks]


def interpolate(values: torch.Tensor, measured: dict[int, float], options: list[Rank]) -> dict[Rank, float]:
    """Damage at every candidate from damages measured at some: piecewise linear in discarded variance
    (dense = 0), made non-increasing in rank so that more rank never predicts more damage."""
    xs = [0.0] + [discarded(values, r, True) for r in sorted(measured, reverse=True)]
    ys = [0.0] + [max(measured[r], 0.0) for r in sorted(measured, reverse=True)]
    ys = list(np.maximum.accumulate(ys))  # as discard grows, damage does not shrink
    order = np.argsort(xs, kind="stable")
    xs, ys = np.asarray(xs)[order], np.asarray(ys)[order]
    # beyond the smallest probed rank: extend the last segment's slope
    slope = (ys[-1] - ys[-2]) / max(xs[-1] - xs[-2], 1e-12) if len(xs) > 1 else 0.0
    table = {}
    for rank in options:
        x = discarded(values, rank, True)
        table[rank] = float(np.interp(x, xs, ys)) if x <= xs[-1] else float(ys[-1] + slope * (x - xs[-1]))
    return table


def sensitivity_rank(values: torch.Tensor, options: list[Rank], kept: float = 0.99) -> list[int]:
    """The one rank the `sensitivity` model probes: the smallest keeping `kept` of the variance."""
    ranks = [r for r in options if r is not None]
    explained = values.cumsum(0) / values.sum().clamp_min(1e-300)
    return [next((r for r in ranks if explained[r - 1] >= kept), ranks[-1])] if ranks else []


def damage_table(damage: str, eig: dict, options: dict[str, list[Rank]], stats=None,
                 probe: TruncationProbe | None = None, points: int = 6, progress: bool = True,
                 group: Group | None = None) -> DamageTable:
    """Predicted damage of every candidate rank of every projection under `damage`.

    Under torchrun the (projection, rank) probes are split over the processes, balanced by cost (a
    probe runs the layers from its own to the last), and gathered: the same table as one process."""
    if damage not in DAMAGE_MODELS:
        raise UserError(f"damage model must be one of {', '.join(DAMAGE_MODELS)}, got {damage!r}")
    if damage in ("variance", "normalized"):
        return {k: {r: discarded(eig[k][0], r, damage == "normalized") for r in opts} for k, opts in options.items()}
    if probe is None:
        raise UserError(f"the {damage} damage model needs calibration audio (use --calibration, not --stats)")
    group = group or current()
    linears = whisper.encoder_linears(probe.model)
    n_layers = len(whisper.encoder_layers(probe.model))
    # sensitivity: one probe, so the interpolation is one line through the origin
    tasks = [(key, r) for key in options for r in (sensitivity_rank(eig[key][0], options[key]) if damage == "sensitivity"
                                                    else probe_ranks(options[key], points))]
    mine = balance([n_layers - whisper.split_key(key)[0] for key, _ in tasks], group.world)[group.rank]
    measured = {}
    for i in tqdm(mine, desc=f"measuring {damage} damage", disable=not (progress and group.is_main)):
        key, r = tasks[i]
        measured[i] = probe.damage(key, factorize(linears[key], stats.layers[key].mean, eig[key][1], r))
    measured = gather_by_index(group, measured)
    return {key: interpolate(eig[key][0], {r: measured[i] for i, (k, r) in enumerate(tasks) if k == key}, options[key])
            for key in options}
