"""The dense and the compressed encoder side by side over the calibration windows, layer by layer.

Both paths start from the same embedded features (the convolutions are never compressed); after each
layer, `advance` moves both to the next layer's input. Hidden states are kept for every calibration
window (windows x 1500 x d_model floats per path), which is what lets each layer be fitted on the
inputs the compressed model really produces.
"""

from __future__ import annotations

import torch

from .. import whisper
from ..audio import Clip
from ..calibrate import DEFAULT_PACKING, batches, calibration_windows


class Lockstep:
    def __init__(self, loaded: whisper.LoadedModel, student: torch.nn.Module, clips: list[Clip],
                 packing: str = DEFAULT_PACKING, batch_size: int = 8, progress: bool = False):
        self.teacher, self.student = loaded.model, student
        param = next(self.teacher.parameters())
        self.features = [whisper.features(loaded.processor, b, param.device, param.dtype)
                         for b in batches(calibration_windows(clips, packing, progress), batch_size)]
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
