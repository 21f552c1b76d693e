"""The dense and the compressed encoder side by side over the calibration windows, layer by layer.

Both paths start from the same embedded features (the convolutions are never compressed); after each
layer, `advance` moves both to the next layer's input. Hidden states are kept for every calibration
window (windows x 1500 x d_model floats per path), which is what lets each layer be fitted on the
inputs the compressed model really produces.
"""

from __future__ import annotations

import random

import torch

from liteasr.calibration.calibrate import DEFAULT_PACKING, batches, calibration_windows
from liteasr.data.audio import Clip
from liteasr.errors import UserError
from liteasr.models import whisper


def split_clips(clips: list[Clip], fraction: float, seed: int) -> tuple[list[Clip], list[Clip]]:
    """(training clips, held-out clips), the held-out ones chosen by `seed`."""
    if len(clips) < 2:
        raise UserError("refit and healing need at least 2 calibration clips (one is held out)")
    n = min(len(clips) - 1, max(1, round(fraction * len(clips))))
    held = set(random.Random(seed).sample(range(len(clips)), n))
    return [c for i, c in enumerate(clips) if i not in held], [c for i, c in enumerate(clips) if i in held]


def window_features(loaded: whisper.LoadedModel, clips: list[Clip], packing: str = DEFAULT_PACKING,
                    batch_size: int = 8, progress: bool = False, speeds: tuple[float, ...] = (1.0,)) -> list[torch.Tensor]:
    """Log-mel features of the clips' calibration windows (each clip at every speed), in batches (none
    for no clips)."""
    return [f for f, _ in window_batches(loaded, clips, packing, batch_size, progress, speeds)]


def window_batches(loaded: whisper.LoadedModel, clips: list[Clip], packing: str = DEFAULT_PACKING,
                   batch_size: int = 8, progress: bool = False,
                   speeds: tuple[float, ...] = (1.0,)) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """As window_features, with each window's count of speech frames (encoder frames before its padding)."""
    if not clips:
        return []
    param = next(loaded.model.parameters())
    return [(whisper.features(loaded.processor, b, param.device, param.dtype),
             torch.tensor([whisper.speech_frames(len(w)) for w in b], device=param.device))
            for b in batches(calibration_windows(clips, packing, progress, speeds), batch_size)]


class Lockstep:
    """`held[i]` says whether batch i comes from `held_clips` (batches never mix the two)."""

    def __init__(self, loaded: whisper.LoadedModel, student: torch.nn.Module, clips: list[Clip],
                 packing: str = DEFAULT_PACKING, batch_size: int = 8, progress: bool = False,
                 held_clips: list[Clip] = ()):
        self.teacher, self.student = loaded.model, student
        fitted = window_features(loaded, clips, packing, batch_size, progress)
        held = window_features(loaded, list(held_clips), packing, batch_size, progress)
        self.features, self.held = fitted + held, [False] * len(fitted) + [True] * len(held)
        self.dense = [whisper.embed(self.teacher, f) for f in self.features]
        self.compressed = [h.clone() for h in self.dense]
        self.index = 0

    @property
    def windows(self) -> int:
        return sum(f.shape[0] for f in self.features)

    def layers(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(dense layer, compressed layer) at the current index."""
        return whisper.encoder_layers(self.teacher)[self.index], whisper.encoder_layers(self.student)[self.index]

    def advance(self) -> None:
        dense, compressed = self.layers()
        self.dense = [whisper.run_layer(dense, h) for h in self.dense]
        self.compressed = [whisper.run_layer(compressed, h) for h in self.compressed]
        self.index += 1
