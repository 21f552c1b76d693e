"""Healing: a short optimization of the factors on unlabeled audio, against the dense model.

Only the factored projections' `weight1`, `weight2` and `bias` move; shapes never change, so the checkpoint
format and the reduced-dimension attention stay as they are, and healing runs through the very modules that
run at inference. The loss is the relative squared error of the encoder output against the dense encoder's
on the same windows, end to end (the decoder is never run: no transcripts, no labels).

With `seeds=K` the whole healing runs K times from the same factors (other held-out clips, other window
orders) and the factors become the mean of the K results: a soup.

Early stopping on held-out calibration clips (never on evaluation data): healing keeps the weights with the
lowest held-out loss seen, its starting point included, so it never ends worse on the held-out clips than it
started.

The recipe is the one measured best for its cost (research/healing/refine.md). The variants measured no
better there (block-wise stages, a decoder KL term, a cross-attention metric, LayerNorms or dense projections
healing too, cosine schedules, speed perturbation, padding weights, mixing, frequency warping, weight
averaging; on base, a warmup or a slower rate: research/healing/base_rate.md) are built from this module's
pieces in research/healing/variants.py, where they stay reproducible.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
from tqdm.auto import tqdm

from liteasr.calibration.calibrate import DEFAULT_PACKING
from liteasr.data.audio import Clip
from liteasr.models import whisper
from liteasr.models.hf.modeling_lite_whisper import LowRankLinear
from liteasr.refine.lockstep import split_clips, window_batches


SCHEDULES = ("constant", "cosine")


@dataclass
class HealConfig:
    """Defaults: the recipe measured best for its cost (research/healing/refine.md): end to end on the
    encoder-output error, 150 Adam steps of 4 windows at 1e-4 (on 2 CPU cores the 15-minute budget may end
    tiny.en's run a little sooner: 138 steps measured)."""

    steps: int = 150  # optimizer steps
    lr: float = 1e-4
    held_out: float = 0.125  # fraction of calibration clips kept out for early stopping
    eval_every: int = 25  # steps between held-out checks
    patience: int = 6  # held-out checks without improvement before stopping
    minutes: float | None = 15.0  # wall-clock budget (None: unlimited)
    batch_size: int = 4  # windows per step: 150 steps of 4 reached the held-out loss of 150 of 8 in half the time
    seed: int = 0
    # a soup: heal this many times from the same start (seeds seed, seed+1, ...: other held-out splits and
    # window orders), then average the factors. Measured better than one run at 0.6 (research/healing/refine.md);
    # costs as many runs, each with its share of `minutes`
    seeds: int = 1
    # the learning rate over the steps: `constant` at lr, or `cosine`, from lr down to 0 at `steps`. Healing
    # for the window decays (held-out loss 0.1084 -> 0.0698 in 1000 steps, research/window/steps.md); healing
    # the factors does not (a cosine measured worse in WER on unseen speakers there, research/healing/refine.md)
    schedule: str = "constant"

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be 1 or more, got {self.seeds}")
        if not 0.0 < self.held_out < 1.0:
            raise ValueError(f"held_out must be within (0, 1), got {self.held_out}")


@dataclass
class HealReport:
    e2e_loss: tuple[float, float]  # held-out loss before, after
    steps: int
    seconds: float
    members: list["HealReport"] = field(default_factory=list)  # a soup's runs (HealConfig.seeds > 1)

    @property
    def kept_start(self) -> bool:
        """No held-out check beat the start, so best-of-checks restored the unhealed weights (e.g. base at
        1e-4: its held-out loss rises for about 150 steps first, research/healing/base_voices.md)."""
        return bool(self.steps) and not self.members and self.e2e_loss[1] >= self.e2e_loss[0]

    def summary(self) -> str:
        advice = " (a longer patience lets a run through an early rise)"
        if self.members:  # each run has its own held-out clips, so each reports its own losses
            runs = "; ".join(f"{m.e2e_loss[0]:.4f} -> {m.e2e_loss[1]:.4f} in {m.steps} steps" for m in self.members)
            kept = [str(k + 1) for k, m in enumerate(self.members) if m.kept_start]
            kept = f"; {'run' if len(kept) == 1 else 'runs'} {', '.join(kept)} kept the unhealed weights{advice}" \
                if kept else ""
            return (f"healing: soup of {len(self.members)} runs (held-out loss: {runs}); "
                    f"{self.seconds / 60:.1f} min{kept}")
        kept = f"; no held-out check beat the start, so the unhealed weights are kept{advice}" if self.kept_start else ""
        return (f"healing: held-out loss {self.e2e_loss[0]:.4f} -> {self.e2e_loss[1]:.4f} in {self.steps} steps; "
                f"{self.seconds / 60:.1f} min{kept}")


def trainable(model: torch.nn.Module, modules: list[torch.nn.Module] | None = None) -> list[torch.nn.Parameter]:
    """Freeze everything, then free the factors (or the parameters of `modules`, when given)."""
    for p in model.parameters():
        p.requires_grad_(False)
    if modules is None:
        modules = [m for m in whisper.encoder_linears(model).values() if isinstance(m, LowRankLinear)]
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def relative_error(out: torch.Tensor, ref: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Squared error over the reference's spread, both summed over frames ([batch, frames] `weight`)."""
    err, spread = (out - ref).pow(2).sum(-1), (ref - ref.mean((0, 1))).pow(2).sum(-1)
    if weight is not None:
        err, spread = err * weight, spread * weight
    return err.sum() / spread.sum().clamp_min(1e-12)


class Budget:
    def __init__(self, minutes: float | None):
        self.start = time.monotonic()
        self.end = None if minutes is None else self.start + 60 * minutes

    def left(self) -> bool:
        return self.end is None or time.monotonic() < self.end

    def used(self) -> float:
        """The fraction of the budget spent (0 without one)."""
        if self.end is None:
            return 0.0
        return min(1.0, (time.monotonic() - self.start) / max(self.end - self.start, 1e-9))

    def share(self, fraction: float) -> "Budget":
        """A budget ending when `fraction` of what is left now has passed."""
        part = Budget(None)
        if self.end is not None:
            part.end = part.start + fraction * (self.end - part.start)
        return part


def _snapshot(params):
    return [p.detach().clone() for p in params]


def _restore(params, saved):
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)


def heal(loaded: whisper.LoadedModel, lite: torch.nn.Module, clips: list[Clip], config: HealConfig = HealConfig(),
         packing: str = DEFAULT_PACKING, progress: bool = True) -> HealReport:
    """Heal `lite` (a compressed copy of `loaded.model`) in place."""
    if config.seeds > 1:
        return soup(lite, trainable(lite), config, lambda run: heal(loaded, lite, clips, run, packing, progress),
                    progress)
    torch.manual_seed(config.seed)
    start = time.monotonic()
    train_clips, held_clips = split_clips(clips, config.held_out, config.seed)
    train, held = ([f for f, _ in window_batches(loaded, c, packing, config.batch_size)]
                   for c in (train_clips, held_clips))
    params = trainable(lite)
    lite.train(False)  # no dropout: Whisper's is 0 anyway, and healing must be deterministic
    loss, steps = (float("nan"), float("nan")), 0
    if config.steps > 0 and params:
        targets = dense_targets(loaded.model, [*train, *held], progress)

        def loss_of(feats, target):
            return relative_error(whisper.encoder_forward(lite, feats), target)

        loss, steps = fit(params, list(zip(train, targets)), list(zip(held, targets[len(train):])), loss_of,
                          config, Budget(config.minutes), progress)
    for p in lite.parameters():
        p.requires_grad_(False)
    return HealReport(loss, steps, time.monotonic() - start)


def dense_targets(teacher: torch.nn.Module, batches: list[torch.Tensor], progress: bool = True) -> list[torch.Tensor]:
    """The dense encoder's output on every batch of windows."""
    bar = tqdm(batches, desc="healing (dense targets)", disable=not progress)
    return [whisper.encoder_output(teacher, f).clone() for f in bar]


def soup(lite: torch.nn.Module, params: list[torch.nn.Parameter], config, run: Callable[[object], HealReport],
         progress: bool = False) -> HealReport:
    """`config.seeds` runs (`run(config for one seed)`) from the same start, one after another on the same
    weights (no model copies), then their mean. Runs from one start at a small learning rate stay close
    enough to average; every run holds out different clips, so the soup has learned from all of them."""
    start_time = time.monotonic()
    start, total, members = _snapshot(params), [torch.zeros_like(p, dtype=torch.float64) for p in params], []
    budget = Budget(config.minutes)
    for k in range(config.seeds):
        _restore(params, start)
        minutes = None if budget.end is None else (budget.end - time.monotonic()) / 60 / (config.seeds - k)
        if progress:  # the runs' bars look alike: say which one is next
            tqdm.write(f"run {k + 1} of {config.seeds} (seed {config.seed + k})")
        members.append(run(replace(config, seed=config.seed + k, seeds=1, minutes=minutes)))
        for t, p in zip(total, params):
            t.add_(p.detach())
    with torch.no_grad():
        for t, p in zip(total, params):
            p.copy_((t / config.seeds).to(p.dtype))
    for p in lite.parameters():
        p.requires_grad_(False)
    return HealReport((members[0].e2e_loss[0], members[0].e2e_loss[1]), sum(m.steps for m in members),
                      time.monotonic() - start_time, members)


def cosine_rate(lr: float, progress: float) -> float:
    """A cosine from `lr` (progress 0) down to 0 (progress 1)."""
    return lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def fit(params: list[torch.nn.Parameter], train: list[tuple], held: list[tuple], loss_of: Callable[..., torch.Tensor],
        config, budget: Budget, progress: bool = True, learning_rate: Callable[[int], float] | None = None,
        next_batch: Callable[[int], tuple] | None = None, on_check: Callable[[int], None] | None = None
        ) -> tuple[tuple[float, float], int]:
    """Adam on `loss_of(*batch)` over the training batches in a seeded random order, early-stopped on the
    held-out batches: ((held-out loss before, best), steps taken), the best weights restored.

    The learning rate follows `config.schedule` unless a hook gives it; a cosine decays by the steps or by
    the budget's time, whichever is further along, so that a slower machine, whose budget ends the run
    first, still ends it at a low rate. A run the budget ends checks its last steps on the held-out batches.
    Hooks (research/healing/variants.py uses them; the product recipe needs none): `learning_rate(step)`,
    `next_batch(i)` (batch i as the step should see it, e.g. augmented), `on_check(step, held-out loss)` at
    each held-out check."""
    if not budget.left():
        return (float("nan"), float("nan")), 0  # no time: nothing measured, nothing changed

    def held_loss():
        with torch.no_grad():
            return sum(float(loss_of(*b)) for b in held) / len(held)

    before = best = held_loss()
    saved, stale, step = _snapshot(params), 0, 0
    optimizer = torch.optim.Adam(params, lr=config.lr)
    if learning_rate is None and config.schedule == "cosine":
        def learning_rate(step):
            return cosine_rate(config.lr, max(step / config.steps, budget.used()))
    order = random.Random(config.seed + 1)
    queue: list[int] = []
    bar = tqdm(total=config.steps, desc="healing", disable=not progress)
    while step < config.steps and budget.left():
        if not queue:
            queue = order.sample(range(len(train)), len(train))
        i = queue.pop()
        if learning_rate is not None:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step)
        optimizer.zero_grad(set_to_none=True)
        loss_of(*(next_batch(i) if next_batch else train[i])).backward()
        optimizer.step()
        step += 1
        bar.update(1)
        if step % config.eval_every == 0 or step == config.steps or not budget.left():
            loss = held_loss()
            if on_check is not None:
                on_check(step, loss)
            bar.set_postfix(held_out=f"{loss:.4f}", best=f"{best:.4f}")
            if loss < best:
                best, saved, stale = loss, _snapshot(params), 0
            else:
                stale += 1
                if stale >= config.patience:
                    break
    bar.close()
    _restore(params, saved)
    return (before, best), step
