"""Healing: a short optimization of the factors on unlabeled audio, against the dense model.

Only the factored projections' `weight1`, `weight2` and `bias` move (also the encoder's LayerNorms with
`layernorm=True`, and the projections the plan keeps dense with `dense=True`); shapes never change, so the
checkpoint format and the reduced-dimension attention stay as they are, and healing runs through the very
modules that run at inference.

1. Block-wise (optional, `block_epochs`): encoder layer by layer, the compressed layer fed the compressed
   path's input is fitted to the dense layer's output on the dense path (relative squared error), then
   the compressed path moves on.
2. End to end: relative squared error of the encoder output (as is, or with `metric="cross"` as the
   decoder's cross-attention keys and values read it), plus (optional, `kl_weight`) the KL
   divergence of the decoder's next-token distributions from the dense model's, teacher-forced on the
   dense model's own greedy transcripts (no labels). The decoder is frozen.

With `seeds=K` the whole healing runs K times from the same factors (other held-out clips, other
window orders) and the factors become the mean of the K results: a soup.

By default only the end-to-end encoder-output term runs (HealConfig: the recipe measured best for its
cost in benchmarks/refine.md).

Early stopping on held-out calibration clips (never on evaluation data): each stage keeps the weights
with the lowest held-out loss seen, its starting point included, so healing never ends worse on the
held-out clips than it started.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace

import torch
from tqdm.auto import tqdm

from liteasr.calibration.calibrate import DEFAULT_PACKING
from liteasr.data.audio import Clip
from liteasr.models import generation, whisper
from liteasr.models.hf.modeling_lite_whisper import LowRankLinear
from liteasr.refine import augment
from liteasr.refine.lockstep import split_clips, window_batches

METRICS = ("encoder", "cross")
SCHEDULES = ("constant", "cosine")


@dataclass
class HealConfig:
    """Defaults: the recipe measured best for its cost (benchmarks/refine.md): end to end on the plain
    encoder-output error, 150 Adam steps of 4 windows at 1e-4 (on 2 CPU cores the 15-minute budget may end
    tiny.en's run a little sooner: 138 steps measured). Block-wise epochs, the decoder KL term (which
    needs lr 3e-5 to help at all) and the cross-attention metric measured no better on unseen speakers;
    they stay options."""

    block_epochs: int = 0  # passes over the training windows per encoder layer (0: no block-wise stage)
    steps: int = 150  # end-to-end optimizer steps
    block_lr: float = 1e-4
    lr: float = 1e-4  # end to end
    # the end-to-end learning rate over `steps`: constant, or cosine (from `lr` down to 0 at the last step).
    # Cosine ended lower on held-out clips and measured worse in WER on unseen speakers at 0.6 (refine.md)
    schedule: str = "constant"
    kl_weight: float = 0.0  # decoder KL term (needs the dense model's own transcripts: minutes of decoding)
    # how the encoder-output error is measured: "encoder" (plain squared error) or "cross" (through the
    # decoder's cross-attention key and value maps: the error the decoder actually reads, no decoding needed)
    metric: str = "encoder"
    layernorm: bool = False
    # also move the encoder projections the rank plan keeps dense (weight and bias), to adapt to the factored
    # layers around them (tiny.en at 0.6 keeps 8 of 24 dense). Measured no better at 0.6 (refine.md)
    dense: bool = False
    held_out: float = 0.125  # fraction of calibration clips kept out for early stopping
    eval_every: int = 25  # end-to-end steps between held-out checks
    patience: int = 6  # held-out checks without improvement before stopping
    minutes: float | None = 15.0  # wall-clock budget for both stages (None: unlimited)
    batch_size: int = 4  # windows per step: 150 steps of 4 reached the held-out loss of 150 of 8 in half the time
    seed: int = 0
    # every healing clip is also seen at these speed factors (audio.change_speed): more voices, same clips.
    # (0.9, 1.0, 1.1) measured worse at 0.6 than the same recipe at 1.0 alone (refine.md)
    speeds: tuple[float, ...] = (1.0,)
    # weight of the 30 s window's padding frames (after a short clip ends) in the end-to-end error, speech
    # frames weighing 1: padding holds most frames of a short clip's window but little of what the decoder reads
    pad_weight: float = 1.0
    # function matching: each training window is mixed, in mel power, with another training window at a
    # weight drawn from [0, mix] (a second voice under the first), and the dense model's output on the
    # mixture is the target, computed at every step: the student is matched on more inputs than the clips
    # give. 0: the clean windows and their precomputed targets. Held-out checks stay on clean windows.
    # Measured no better at 0.6 over three seeds (mix 0.5, at 500 and 1500 steps: benchmarks/refine.md)
    mix: float = 0.0
    # vocal tract length perturbation (augment.warp_features): each training window's frequency axis is
    # stretched by a factor drawn from [1 - warp, 1 + warp], and the dense model's output on the warped window
    # is the target, computed at every step: voices the healing clips do not have. Held-out checks stay clean.
    # Within noise at 0.6 over twelve seeds (warp 0.1: -0.26 [-0.83, +0.29] WER, benchmarks/refine.md)
    warp: float = 0.0
    # also try the mean of the weights seen at the held-out checks of the second half of the end-to-end
    # stage (stochastic weight averaging); kept when its held-out loss is no worse than the best single one.
    # Measured no better than the plain run at 0.6, unlike a soup of seeds (benchmarks/refine.md)
    average: bool = False
    # a soup: heal this many times from the same start (seeds seed, seed+1, ...: other held-out splits and
    # window orders), then average the factors. Measured better than one run at 0.6 (benchmarks/refine.md);
    # costs as many runs, each with its share of `minutes`
    seeds: int = 1

    def __post_init__(self):
        if self.metric not in METRICS:  # fail before minutes of dense targets, not after
            raise ValueError(f"unknown healing metric {self.metric!r} ({' or '.join(METRICS)})")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {self.schedule!r} ({' or '.join(SCHEDULES)})")
        if not 0.0 <= self.pad_weight <= 1.0:
            raise ValueError(f"pad_weight must be within [0, 1], got {self.pad_weight}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be 1 or more, got {self.seeds}")
        if not 0.0 <= self.mix < 1.0:
            raise ValueError(f"mix must be within [0, 1), got {self.mix}")
        if not 0.0 <= self.warp < 0.5:
            raise ValueError(f"warp must be within [0, 0.5), got {self.warp}")
        if (self.mix or self.warp) and self.kl_weight:
            raise ValueError("mix and warp cannot go with the KL term: the dense transcripts are of the clean windows")


@dataclass
class HealReport:
    block_loss: list[tuple[float, float]]  # per layer: held-out loss before, after
    e2e_loss: tuple[float, float]  # held-out loss before, after
    steps: int
    seconds: float
    members: list["HealReport"] = field(default_factory=list)  # a soup's runs (HealConfig.seeds > 1)

    def summary(self) -> str:
        if self.members:  # each run has its own held-out clips, so each reports its own losses
            runs = "; ".join(f"{m.e2e_loss[0]:.4f} -> {m.e2e_loss[1]:.4f} in {m.steps} steps" for m in self.members)
            return (f"healing: soup of {len(self.members)} runs (held-out loss, end to end: {runs}); "
                    f"{self.seconds / 60:.1f} min")
        layers = ", ".join(f"{a:.4f}->{b:.4f}" for a, b in self.block_loss) or "skipped"
        return (f"healing: block-wise held-out loss per layer {layers}; end to end {self.e2e_loss[0]:.4f} -> "
                f"{self.e2e_loss[1]:.4f} in {self.steps} steps; {self.seconds / 60:.1f} min")


def trainable(model: torch.nn.Module, layernorm: bool, dense: bool = False) -> list[torch.nn.Parameter]:
    """Freeze everything, then free the factors (and the encoder's LayerNorms and dense projections if asked)."""
    for p in model.parameters():
        p.requires_grad_(False)
    modules = [m for m in whisper.encoder_linears(model).values() if dense or isinstance(m, LowRankLinear)]
    if layernorm:
        modules += whisper.encoder_norms(model)
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


def frame_weights(speech: torch.Tensor, frames: int, pad_weight: float) -> torch.Tensor | None:
    """[windows, frames]: 1 on each window's speech frames, `pad_weight` on its padding (None: all 1)."""
    if pad_weight == 1.0:
        return None
    return torch.where(torch.arange(frames, device=speech.device)[None] < speech[:, None], 1.0, pad_weight)


class _Budget:
    def __init__(self, minutes: float | None):
        self.end = None if minutes is None else time.monotonic() + 60 * minutes

    def left(self) -> bool:
        return self.end is None or time.monotonic() < self.end

    def share(self, fraction: float) -> "_Budget":
        """A budget ending when `fraction` of what is left now has passed."""
        part = _Budget(None)
        if self.end is not None:
            part.end = time.monotonic() + fraction * (self.end - time.monotonic())
        return part


def learning_rate(config: HealConfig, step: int) -> float:
    """The end-to-end learning rate for optimizer step `step` (0-based) of `config.steps`."""
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
    return config.lr


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
        return _heal_soup(loaded, lite, clips, config, packing, progress)
    torch.manual_seed(config.seed)
    start = time.monotonic()
    budget = _Budget(config.minutes)
    train_clips, held_clips = split_clips(clips, config.held_out, config.seed)
    train_batches, held_batches = (window_batches(loaded, c, packing, config.batch_size, speeds=config.speeds)
                                   for c in (train_clips, held_clips))
    train, held = [f for f, _ in train_batches], [f for f, _ in held_batches]
    speech = [n for _, n in train_batches], [n for _, n in held_batches]
    params = trainable(lite, config.layernorm, config.dense)
    lite.train(False)  # no dropout: Whisper's is 0 anyway, and healing must be deterministic
    # the dense model's targets first (with the KL term they cost minutes of decoding), then half of what
    # is left block-wise and the rest end to end: the end-to-end stage always gets its time
    targets = (_teacher_targets(loaded, train, held, config.kl_weight > 0, progress)
               if config.steps > 0 and params else None)
    block = (_heal_blocks(loaded.model, lite, train, held, config, budget.share(0.5), progress)
             if config.block_epochs > 0 else [])
    e2e, steps = _heal_end_to_end(loaded, lite, train, held, speech, targets, params, config, budget, progress)
    for p in lite.parameters():
        p.requires_grad_(False)
    return HealReport(block, e2e, steps, time.monotonic() - start)


def _heal_soup(loaded, lite, clips, config: HealConfig, packing: str, progress: bool) -> HealReport:
    """`config.seeds` runs from the same start, one after another on the same weights (no model copies),
    then their mean. Runs from one start at a small learning rate stay close enough to average; every run
    holds out different clips, so the soup has learned from all of them."""
    start_time = time.monotonic()
    params = trainable(lite, config.layernorm, config.dense)
    start, total, members = _snapshot(params), [torch.zeros_like(p, dtype=torch.float64) for p in params], []
    budget = _Budget(config.minutes)
    for k in range(config.seeds):
        _restore(params, start)
        minutes = None if budget.end is None else (budget.end - time.monotonic()) / 60 / (config.seeds - k)
        members.append(heal(loaded, lite, clips, replace(config, seed=config.seed + k, seeds=1, minutes=minutes),
                            packing, progress))
        for t, p in zip(total, params):
            t.add_(p.detach())
    with torch.no_grad():
        for t, p in zip(total, params):
            p.copy_((t / config.seeds).to(p.dtype))
    return HealReport([], (members[0].e2e_loss[0], members[0].e2e_loss[1]), sum(m.steps for m in members),
                      time.monotonic() - start_time, members)


def _heal_blocks(teacher, student, train, held, config: HealConfig, budget: _Budget, progress: bool):
    """Stage 1: each encoder layer fitted to the dense layer's output, on the compressed path's input."""
    embed = lambda feats: [whisper.embed(teacher, f).clone() for f in feats]  # noqa: E731
    dense_train, dense_held = embed(train), embed(held)
    comp_train, comp_held = [h.clone() for h in dense_train], [h.clone() for h in dense_held]
    report = []
    layers = list(zip(whisper.encoder_layers(teacher), whisper.encoder_layers(student)))
    order = random.Random(config.seed)
    bar = tqdm(total=len(layers) * config.block_epochs * len(train), desc="healing (block-wise)", disable=not progress)
    for index, (dense_layer, layer) in enumerate(layers):
        # an equal share of what is left for each remaining layer: a slow machine heals every layer a
        # little rather than the first ones fully and the last ones not at all
        share = budget.share(1 / (len(layers) - index))
        target_train = [whisper.run_layer(dense_layer, h).clone() for h in dense_train]
        target_held = [whisper.run_layer(dense_layer, h).clone() for h in dense_held]
        params = [p for p in layer.parameters() if p.requires_grad]

        def held_loss():
            with torch.no_grad():
                return sum(float(relative_error(whisper.layer_forward(layer, x), y))
                           for x, y in zip(comp_held, target_held)) / len(comp_held)

        before = best = held_loss()
        saved = _snapshot(params)
        if params:
            optimizer = torch.optim.Adam(params, lr=config.block_lr)
            for _ in range(config.block_epochs):
                if not share.left():
                    break
                for i in order.sample(range(len(train)), len(train)):
                    if not share.left():
                        break
                    optimizer.zero_grad(set_to_none=True)
                    relative_error(whisper.layer_forward(layer, comp_train[i]), target_train[i]).backward()
                    optimizer.step()
                    bar.update(1)
                loss = held_loss()
                bar.set_postfix(held_out=f"{loss:.4f}")
                if loss >= best:
                    break  # early stopping: this epoch did not help on held-out clips
                best, saved = loss, _snapshot(params)
            _restore(params, saved)
        report.append((before, best))
        comp_train = [whisper.run_layer(layer, h).clone() for h in comp_train]
        comp_held = [whisper.run_layer(layer, h).clone() for h in comp_held]
        dense_train, dense_held = target_train, target_held  # the next layer's dense inputs
    bar.close()
    return report


def _teacher_targets(loaded, train, held, transcripts: bool, progress: bool):
    """Per batch: the dense encoder output and, for the KL term, the dense model's own greedy
    transcripts (ids, mask); without it no decoding is needed (and the decoder is never used)."""
    def targets(feats):
        encoded = whisper.encoder_output(loaded.model, feats).clone()
        ids, mask = generation.teacher_transcripts(loaded, feats) if transcripts else (None, None)
        return encoded, ids, mask

    bar = tqdm([*train, *held], desc="healing (dense targets)", disable=not progress)
    done = [targets(f) for f in bar]
    return done[:len(train)], done[len(train):]


def cross_attention_metric(model: torch.nn.Module) -> torch.Tensor:
    """M [d, d] with |x M^(1/2)|^2 = what the decoder reads of an encoder-output row x: the sum over decoder
    layers of its cross-attention key and value maps' Gram matrices (float64)."""
    metric = 0
    for layer in model.model.decoder.layers:
        for proj in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj):
            w = proj.weight.detach().double()
            metric = metric + w.T @ w
    return metric


def _metric(teacher, name: str):
    """The map applied to encoder outputs before their squared error is taken."""
    if name == "encoder":
        return lambda x: x
    if name == "cross":
        # a square root of the metric (Cholesky), so the loss costs one d x d product per window
        root = torch.linalg.cholesky(cross_attention_metric(teacher)).to(next(teacher.parameters()))
        return lambda x: x @ root
    raise ValueError(f"unknown healing metric {name!r} ({' or '.join(METRICS)})")


def _heal_end_to_end(loaded, student, train, held, speech, targets, params, config: HealConfig, budget: _Budget,
                     progress: bool):
    """Stage 2: encoder output error + decoder KL against the dense model on its own transcripts."""
    teacher = loaded.model
    if targets is None or not budget.left():
        return (float("nan"), float("nan")), 0  # no end-to-end stage: nothing measured, nothing changed
    train_t, held_t = targets
    weigh = _metric(teacher, config.metric)
    train_w, held_w = ([frame_weights(n, t[0].shape[1], config.pad_weight) for n, t in zip(counts, ts)]
                       for counts, ts in zip(speech, targets))

    def loss_of(feats, target, weight):
        encoded, ids, mask = target
        out = whisper.encoder_forward(student, feats)
        loss = relative_error(weigh(out), weigh(encoded), weight)
        if config.kl_weight:
            with torch.no_grad():
                ref = whisper.decoder_log_probs(teacher, encoded, ids, mask)
            logp = whisper.decoder_log_probs(student, out, ids, mask)
            loss = loss + config.kl_weight * (ref.exp() * (ref - logp)).sum(-1).mean()
        return loss

    def held_loss():
        with torch.no_grad():
            return sum(float(loss_of(f, t, w)) for f, t, w in zip(held, held_t, held_w)) / len(held)

    before = best = held_loss()
    saved, stale, step = _snapshot(params), 0, 0
    mean, averaged = None, 0  # running mean of the weights at held-out checks (config.average)
    optimizer = torch.optim.Adam(params, lr=config.lr)
    order = random.Random(config.seed + 1)
    augment_rng = torch.Generator().manual_seed(config.seed + 2)  # mix partners and weights, warp factors
    queue: list[int] = []
    bar = tqdm(total=config.steps, desc="healing (end to end)", disable=not progress)
    while step < config.steps and budget.left():
        if not queue:
            queue = order.sample(range(len(train)), len(train))
        i = queue.pop()
        batch = (train[i], train_t[i], train_w[i])
        if config.mix or config.warp:
            batch = _augmented(teacher, train, speech[0], i, config, augment_rng)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        optimizer.zero_grad(set_to_none=True)
        loss_of(*batch).backward()
        optimizer.step()
        step += 1
        bar.update(1)
        if step % config.eval_every == 0 or step == config.steps:
            if config.average and 2 * step > config.steps:
                averaged += 1
                mean = _snapshot(params) if mean is None else mean
                with torch.no_grad():
                    for m, p in zip(mean, params):
                        m.add_(p.detach() - m, alpha=1 / averaged)
            loss = held_loss()
            bar.set_postfix(held_out=f"{loss:.4f}", best=f"{best:.4f}")
            if loss < best:
                best, saved, stale = loss, _snapshot(params), 0
            else:
                stale += 1
                if stale >= config.patience:
                    break
    bar.close()
    if averaged > 1:
        _restore(params, mean)
        loss = held_loss()
        if loss <= best:
            best, saved = loss, mean
    _restore(params, saved)
    return (before, best), step


def _augmented(teacher, train, speech, i: int, config: HealConfig, rng: torch.Generator):
    """Batch i's windows as `mix` and `warp` change them, with the dense encoder's output on those very
    windows as the target. mix: each window mixed with one of a random other batch (cycled to its length;
    with one batch only, each window with the next) at a weight drawn from [0, config.mix]; warp: then its
    frequency axis stretched by a factor drawn from [1 - config.warp, 1 + config.warp]."""
    feats, frames = train[i], speech[i]
    if config.mix:
        j = int(torch.randint(len(train) - 1, (1,), generator=rng)) if len(train) > 1 else i
        j += len(train) > 1 and j >= i  # any batch but i itself
        pick = ((torch.arange(len(train[i])) + (j == i)) % len(train[j])).to(train[j].device)
        weight = (torch.rand(len(train[i]), generator=rng) * config.mix).to(train[i].device)
        feats = augment.mix_features(train[i], train[j][pick], weight)
        frames = torch.maximum(speech[i], speech[j][pick])
    if config.warp:
        feats = augment.warp_features(feats, 1 + (2 * torch.rand(len(feats), generator=rng) - 1) * config.warp)
    target = (whisper.encoder_output(teacher, feats).clone(), None, None)
    return feats, target, frame_weights(frames, target[0].shape[1], config.pad_weight)
