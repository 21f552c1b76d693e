"""The healing variants measured no better than the product recipe (refine.md), kept reproducible.

`VariantConfig` is the product's `HealConfig` plus every variant's field; `heal_variant` runs it from the
product's pieces (liteasr.refine.heal: `fit`, `soup`, `relative_error`, `trainable`, `Budget`). With every
variant field at its default it is the product's `heal` (tested). The study scripts beside this file
(refine.py, heal_gpu.py, ...) heal through it.

1. Block-wise (optional, `block_epochs`): encoder layer by layer, the compressed layer fed the compressed
   path's input is fitted to the dense layer's output on the dense path (relative squared error), then
   the compressed path moves on.
2. End to end: relative squared error of the encoder output (as is, or with `metric="cross"` as the
   decoder's cross-attention keys and values read it), plus (optional, `kl_weight`) the KL divergence of
   the decoder's next-token distributions from the dense model's, teacher-forced on the dense model's own
   greedy transcripts (no labels). The decoder is frozen.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `research.*`

from liteasr.calibration.calibrate import DEFAULT_PACKING  # noqa: E402
from liteasr.data.audio import Clip  # noqa: E402
from liteasr.models import generation, whisper  # noqa: E402
from liteasr.models.hf.modeling_lite_whisper import LowRankLinear  # noqa: E402
from liteasr.refine.heal import (Budget, HealConfig, HealReport, _restore, _snapshot, fit,  # noqa: E402
                                 relative_error, soup, trainable)
from liteasr.refine.lockstep import split_clips, window_batches  # noqa: E402
from research.healing import augment  # noqa: E402

METRICS = ("encoder", "cross")


@dataclass
class VariantConfig(HealConfig):
    block_epochs: int = 0  # passes over the training windows per encoder layer (0: no block-wise stage)
    block_lr: float = 1e-4
    # `schedule` (HealConfig's): cosine ended lower on held-out clips and measured worse in WER on unseen
    # speakers at 0.6, so factor healing keeps its constant rate
    kl_weight: float = 0.0  # decoder KL term (needs the dense model's own transcripts: minutes of decoding)
    # "encoder" (plain squared error) or "cross" (through the decoder's cross-attention key and value maps)
    metric: str = "encoder"
    layernorm: bool = False  # the encoder's LayerNorms heal too
    dense: bool = False  # the projections the rank plan keeps dense heal too
    # every healing clip is also seen at these speed factors (audio.change_speed): more voices, same clips
    speeds: tuple[float, ...] = (1.0,)
    # weight of the 30 s window's padding frames (after a short clip ends), speech frames weighing 1
    pad_weight: float = 1.0
    # function matching: each training window mixed, in mel power, with another at a weight drawn from
    # [0, mix]; the dense model's output on the mixture is the target, computed at every step
    mix: float = 0.0
    # vocal tract length perturbation: each training window's frequency axis stretched by a factor drawn
    # from [1 - warp, 1 + warp]; the dense output on the warped window is the target
    warp: float = 0.0
    # also try the mean of the weights seen at the held-out checks of the second half (SWA); kept when
    # its held-out loss is no worse than the best single one
    average: bool = False
    # steps over which the rate rises linearly to lr before its schedule (0: none): no better on base at 0.7
    # (research/healing/base_rate.md)
    warmup: int = 0

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.warmup < max(self.steps, 1):
            raise ValueError(f"warmup must be 0 or more and below steps ({self.steps}), got {self.warmup}")
        if self.metric not in METRICS:  # fail before minutes of dense targets, not after
            raise ValueError(f"unknown healing metric {self.metric!r} ({' or '.join(METRICS)})")
        if not 0.0 <= self.pad_weight <= 1.0:
            raise ValueError(f"pad_weight must be within [0, 1], got {self.pad_weight}")
        if not 0.0 <= self.mix < 1.0:
            raise ValueError(f"mix must be within [0, 1), got {self.mix}")
        if not 0.0 <= self.warp < 0.5:
            raise ValueError(f"warp must be within [0, 0.5), got {self.warp}")
        if (self.mix or self.warp) and self.kl_weight:
            raise ValueError("mix and warp cannot go with the KL term: the dense transcripts are of the clean windows")


@dataclass
class VariantReport(HealReport):
    block_loss: list[tuple[float, float]] = field(default_factory=list)  # per layer: held-out loss before, after

    def summary(self) -> str:
        if self.members or not self.block_loss:
            return super().summary()
        layers = ", ".join(f"{a:.4f}->{b:.4f}" for a, b in self.block_loss)
        return f"block-wise held-out loss per layer {layers}; " + super().summary()


def variant_trainable(model: torch.nn.Module, layernorm: bool, dense: bool) -> list[torch.nn.Parameter]:
    modules = [m for m in whisper.encoder_linears(model).values() if dense or isinstance(m, LowRankLinear)]
    if layernorm:
        modules += whisper.encoder_norms(model)
    return trainable(model, modules)


def frame_weights(speech: torch.Tensor, frames: int, pad_weight: float) -> torch.Tensor | None:
    """[windows, frames]: 1 on each window's speech frames, `pad_weight` on its padding (None: all 1)."""
    if pad_weight == 1.0:
        return None
    return torch.where(torch.arange(frames, device=speech.device)[None] < speech[:, None], 1.0, pad_weight)


def cross_attention_metric(model: torch.nn.Module) -> torch.Tensor:
    """M [d, d] with |x M^(1/2)|^2 = what the decoder reads of an encoder-output row x: the sum over decoder
    layers of its cross-attention key and value maps' Gram matrices (float64)."""
    metric = 0
    for layer in model.model.decoder.layers:
        for proj in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj):
            w = proj.weight.detach().double()
            metric = metric + w.T @ w
    return metric


def output_metric(teacher, name: str):
    """The map applied to encoder outputs before their squared error is taken."""
    if name == "encoder":
        return lambda x: x
    if name == "cross":
        # a square root of the metric (Cholesky), so the loss costs one d x d product per window
        root = torch.linalg.cholesky(cross_attention_metric(teacher)).to(next(teacher.parameters()))
        return lambda x: x @ root
    raise ValueError(f"unknown healing metric {name!r} ({' or '.join(METRICS)})")


def heal_variant(loaded: whisper.LoadedModel, lite: torch.nn.Module, clips: list[Clip],
                 config: VariantConfig = VariantConfig(), packing: str = DEFAULT_PACKING,
                 progress: bool = True, on_check=None) -> VariantReport:
    """Heal `lite` in place with a variant recipe; `on_check(step, held-out loss)` as in heal.fit."""
    if config.seeds > 1:
        params = variant_trainable(lite, config.layernorm, config.dense)
        report = soup(lite, params, config,
                      lambda run: heal_variant(loaded, lite, clips, run, packing, progress, on_check))
        return VariantReport(report.e2e_loss, report.steps, report.seconds, report.members)
    torch.manual_seed(config.seed)
    start = time.monotonic()
    budget = Budget(config.minutes)
    train_clips, held_clips = split_clips(clips, config.held_out, config.seed)
    train_batches, held_batches = (window_batches(loaded, c, packing, config.batch_size, speeds=config.speeds)
                                   for c in (train_clips, held_clips))
    train, held = [f for f, _ in train_batches], [f for f, _ in held_batches]
    speech = [n for _, n in train_batches], [n for _, n in held_batches]
    params = variant_trainable(lite, config.layernorm, config.dense)
    lite.train(False)
    # the dense model's targets first (with the KL term they cost minutes of decoding), then half of what
    # is left block-wise and the rest end to end: the end-to-end stage always gets its time
    targets = (_teacher_targets(loaded, train, held, config.kl_weight > 0, progress)
               if config.steps > 0 and params else None)
    block = (_heal_blocks(loaded.model, lite, train, held, config, budget.share(0.5), progress)
             if config.block_epochs > 0 else [])
    e2e, steps = ((float("nan"), float("nan")), 0) if targets is None else \
        _heal_end_to_end(loaded, lite, train, held, speech, targets, params, config, budget, progress, on_check)
    for p in lite.parameters():
        p.requires_grad_(False)
    return VariantReport(e2e, steps, time.monotonic() - start, block_loss=block)


def _heal_blocks(teacher, student, train, held, config: VariantConfig, budget: Budget, progress: bool):
    """Stage 1: each encoder layer fitted to the dense layer's output, on the compressed path's input."""
    embed = lambda feats: [whisper.embed(teacher, f).clone() for f in feats]  # noqa: E731
    dense_train, dense_held = embed(train), embed(held)
    comp_train, comp_held = [h.clone() for h in dense_train], [h.clone() for h in dense_held]
    report = []
    layers = list(zip(whisper.encoder_layers(teacher), whisper.encoder_layers(student)))
    order = random.Random(config.seed)
    bar = tqdm(total=len(layers) * config.block_epochs * len(train), desc="healing (block-wise)", disable=not progress)
    for index, (dense_layer, layer) in enumerate(layers):
        # an equal share of what is left for each remaining layer
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


def warmed_up(config: VariantConfig):
    """fit's learning_rate hook for a warmup (None without one: fit follows config.schedule): linear from
    lr / warmup to lr over `warmup` steps, then the schedule over the steps left."""
    if not config.warmup:
        return None

    def rate(step):
        if step < config.warmup:
            return config.lr * (step + 1) / config.warmup
        if config.schedule == "cosine":
            return config.lr * 0.5 * (1 + math.cos(math.pi * (step - config.warmup) / (config.steps - config.warmup)))
        return config.lr
    return rate


def _heal_end_to_end(loaded, student, train, held, speech, targets, params, config: VariantConfig, budget: Budget,
                     progress: bool, report_check=None):
    """Stage 2: encoder output error (+ decoder KL) against the dense model, through the product's `fit`."""
    teacher = loaded.model
    train_t, held_t = targets
    weigh = output_metric(teacher, config.metric)
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

    augment_rng = torch.Generator().manual_seed(config.seed + 2)  # mix partners and weights, warp factors
    next_batch = (lambda i: _augmented(teacher, train, speech[0], i, config, augment_rng)) \
        if config.mix or config.warp else None
    mean, averaged = None, 0  # running mean of the weights at held-out checks (config.average)

    def on_check(step, loss):
        nonlocal mean, averaged
        if report_check is not None:
            report_check(step, loss)
        if config.average and 2 * step > config.steps:
            averaged += 1
            mean = _snapshot(params) if mean is None else mean
            with torch.no_grad():
                for m, p in zip(mean, params):
                    m.add_(p.detach() - m, alpha=1 / averaged)

    held_batches = list(zip(held, held_t, held_w))
    (before, best), step = fit(params, list(zip(train, train_t, train_w)), held_batches, loss_of, config, budget,
                               progress, learning_rate=warmed_up(config), next_batch=next_batch, on_check=on_check)
    if averaged > 1:
        saved = _snapshot(params)
        _restore(params, mean)
        with torch.no_grad():
            loss = sum(float(loss_of(*b)) for b in held_batches) / len(held_batches)
        if loss <= best:
            best = loss
        else:
            _restore(params, saved)
    return (before, best), step


def _augmented(teacher, train, speech, i: int, config: VariantConfig, rng: torch.Generator):
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
