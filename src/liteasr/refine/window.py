"""Healing for the short window: teach a model (compressed or not) to read clips from a window sized to the
audio (whisper.WindowPolicy) as well as the dense model reads them from its padded 30 s window.

Whisper was trained on 30 s windows; given a short one it often fails to stop and repeats itself
(whisper.cpp keeps its `audio_ctx` opt-in for that reason). The teacher is the dense model on the padded
window; the student runs on the clip's own window. The loss matches what the decoder reads: the encoder
output on the student's frames (the teacher's first frames of its padded window) and the decoder's
next-token distributions on the teacher's own transcripts (KL, the decoder frozen: gradients reach the
encoder only). Unlabeled audio only; the same budgets, seeds, early stopping and held-out checks as
heal.heal. The encoder's projections move (the factors of a compressed model, the dense weights of a
dense one); shapes never change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch
from tqdm.auto import tqdm

from liteasr.data.audio import Clip, load_audio
from liteasr.models import generation, whisper
from liteasr.refine.heal import Budget, HealConfig, HealReport, fit, relative_error, soup, trainable
from liteasr.refine.lockstep import split_clips


# Healing for the window needs more steps than healing the factors, and a decaying learning rate: on dense
# tiny.en (floor 5 s) the held-out loss went 0.3165 -> 0.2263 in 150 steps, 0.1084 in 1000 at a constant
# rate and 0.0698 in 1000 with cosine decay; development WER on librispeech_other from +5.95 to +1.12 to -0.07
# against the padded window (research/window/steps.md). 1000 steps took 14.6 min on 2 CPU cores, and 33 for the
# 0.7 compression on a slower machine of the same kind: there the budget ends the run first, and the cosine
# follows the budget's time instead of the steps (heal.fit), so the rate has decayed by then all the same.
# At the cosine's first, fast steps the held-out loss rises for 100-200 steps before it falls: with healing's
# patience of 6 checks (150 steps) the 0.7 model healed on 547 clips stopped at step 200 at its step-50 loss
# (0.2592; on 256 clips, all 1000 steps: 0.1524), so early stopping here waits 20 checks, half the run
# (research/window/audio.md); the best weights are kept either way.
# Three runs with seeds 0, 1, 2, averaged (a soup, heal.soup): the seed alone moved tiny.en 0.7's cost on
# librispeech_other's test draws from +0.84 to +2.00 WER against its padded window, and the soup of three cost
# +0.26 [-1.05, +1.55]; dense tiny.en's runs +0.06 / -0.19 / +0.32, their soup -0.06 [-1.37, +1.19]
# (research/window/seeds.md). A soup is three times one run's time; the budget is 30 min a run.
WINDOW_HEAL_RUN_MINUTES = 30.0
WINDOW_HEAL = HealConfig(steps=1000, minutes=3 * WINDOW_HEAL_RUN_MINUTES, schedule="cosine", patience=20, seeds=3)


def with_runs(config: HealConfig, seeds: int) -> HealConfig:
    """`config` (WINDOW_HEAL or a change of it) as a soup of `seeds` runs, each run keeping the time a run of
    `config` has (a soup's runs share its budget)."""
    minutes = None if config.minutes is None else config.minutes / config.seeds * seeds
    return replace(config, seeds=seeds, minutes=minutes)


@dataclass
class WindowBatch:
    student: torch.Tensor  # features on the clips' short window [batch, n_mels, frames]
    target: torch.Tensor  # the dense encoder's output on the padded window, its first frames/2 frames
    teacher_encoded: torch.Tensor  # the dense encoder's whole padded output (the decoder's teacher reads it)
    ids: torch.Tensor  # prompt + the dense model's transcript + end-of-text
    mask: torch.Tensor  # positions that predict a transcript token


def window_batches(loaded: whisper.LoadedModel, clips: list[Clip], policy: whisper.WindowPolicy,
                   batch_size: int, languages: list[str | None] | None = None,
                   progress: bool = False) -> list[WindowBatch]:
    """Clips sorted by length, `batch_size` at a time, each batch on the window of its longest clip (so a
    batch's clips see nearly the windows they will see at inference), with the dense model's targets."""
    param = next(loaded.model.parameters())
    audios = [load_audio(c) for c in clips]
    languages = languages or [getattr(c, "language", None) for c in clips]
    order = sorted(range(len(clips)), key=lambda i: len(audios[i]))
    out = []
    for start in tqdm(range(0, len(order), batch_size), desc="healing for the window (dense targets)",
                      disable=not progress):
        idx = order[start : start + batch_size]
        batch = [audios[i][: whisper.WINDOW_SECONDS * 16000] for i in idx]
        frames = policy.frames(max(len(a) for a in batch))
        padded = whisper.features(loaded.processor, batch, param.device, param.dtype)
        teacher = whisper.encoder_output(loaded.model, padded).clone()
        ids, mask = generation.teacher_transcripts(loaded, padded, [languages[i] for i in idx],
                                                   max(len(a) for a in batch))
        # the short window's features are the padded window's first frames (whisper.features)
        out.append(WindowBatch(padded[..., :frames].clone(), teacher[:, : frames // 2].clone(), teacher, ids, mask))
    return out


def window_loss(teacher: torch.nn.Module, student: torch.nn.Module, batch: WindowBatch,
                decoder_weight: float = 1.0) -> torch.Tensor:
    """Relative encoder-output error on the short window + decoder_weight x KL(teacher || student) per
    transcript token."""
    encoded = whisper.encoder_forward(student, batch.student)
    loss = relative_error(encoded, batch.target)
    if decoder_weight:
        with torch.no_grad():
            reference = whisper.decoder_log_probs(teacher, batch.teacher_encoded, batch.ids, batch.mask)
        log_probs = whisper.decoder_log_probs(student, encoded, batch.ids, batch.mask)
        kl = torch.nn.functional.kl_div(log_probs, reference, log_target=True, reduction="sum") / max(len(reference), 1)
        loss = loss + decoder_weight * kl
    return loss


def heal_window(loaded: whisper.LoadedModel, student: torch.nn.Module, clips: list[Clip],
                policy: whisper.WindowPolicy, config: HealConfig = WINDOW_HEAL, decoder_weight: float = 1.0,
                progress: bool = True, modules: list[torch.nn.Module] | None = None, on_check=None) -> HealReport:
    """Heal `student` (`loaded.model` itself or a compressed copy of it) in place for `policy`'s windows;
    the dense teacher is `loaded.model` as it is now (its targets are computed before anything moves).
    Hooks for studies (research/window/steps.py): `modules` that train (default: the encoder's projections),
    `on_check(step, held-out loss)` as in heal.fit."""
    if policy.padded:
        raise ValueError("healing for the window needs a window policy shorter than 30 s")
    if config.seeds > 1:  # a soup, as heal.heal makes one: every run from the same start, then their mean
        # (the teacher's targets of each run are computed after the start is restored, so from the start)
        params = trainable(student, modules or list(whisper.encoder_linears(student).values()))
        return soup(student, params, config, lambda run: heal_window(loaded, student, clips, policy, run, decoder_weight,
                                                                     progress, modules, on_check), progress)
    torch.manual_seed(config.seed)
    start = time.monotonic()
    train_clips, held_clips = split_clips(clips, config.held_out, config.seed)
    train = window_batches(loaded, train_clips, policy, config.batch_size, progress=progress)
    held = window_batches(loaded, held_clips, policy, config.batch_size, progress=progress)
    # The targets above were computed before anything moves, and only encoder projections train: the
    # decoder the teacher's distributions come from is frozen, even when the student is loaded.model itself.
    teacher = loaded.model
    params = trainable(student, modules or list(whisper.encoder_linears(student).values()))
    student.train(False)
    loss, steps = fit(params, [(b,) for b in train], [(b,) for b in held],
                      lambda b: window_loss(teacher, student, b, decoder_weight), config, Budget(config.minutes),
                      progress, on_check=on_check)
    for p in student.parameters():
        p.requires_grad_(False)
    return HealReport(loss, steps, time.monotonic() - start)
