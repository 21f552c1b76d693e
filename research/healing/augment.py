"""Label-free augmentations of log-mel windows for healing: more voices from the same clips."""

from __future__ import annotations

import numpy as np
import torch

from liteasr.data.audio import SAMPLE_RATE


def mix_features(first: torch.Tensor, second: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The log-mel features of `(1 - weight) * first + weight * second` in mel power, per window
    (`weight` [windows]): what the feature extractor gives for the two windows' audio added (up to the
    cross terms of their spectra), with its normalization: log10 power, floored 8 below the window's
    maximum, then (x + 4) / 4."""
    power = lambda x: torch.pow(10.0, 4 * x.double() - 4)  # noqa: E731  (the floor cannot be undone: kept as is)
    w = weight.double()[:, None, None]
    log_spec = torch.log10(((1 - w) * power(first) + w * power(second)).clamp_min(1e-10))
    log_spec = torch.maximum(log_spec, log_spec.amax((1, 2), keepdim=True) - 8.0)
    return ((log_spec + 4.0) / 4.0).to(first.dtype)


def warp_features(features: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Vocal tract length perturbation of log-mel windows (`alpha` [windows]): each window's frequency axis
    stretched by its factor (above 1: formants move up, as for a shorter vocal tract), piecewise linear so
    that the top of the band stays put (Jaitly & Hinton, 2013), by linear interpolation between the mel
    bins of the feature extractor's (Slaney) scale. A new voice saying the same words, no audio needed."""
    from transformers.audio_utils import hertz_to_mel, mel_to_hertz

    bins, top = features.shape[1], SAMPLE_RATE / 2
    mels = np.linspace(hertz_to_mel(0.0, "slaney"), hertz_to_mel(top, "slaney"), bins + 2)[1:-1]  # bin centres
    hz = torch.from_numpy(mel_to_hertz(mels, "slaney"))
    a = alpha.detach().cpu().double()[:, None]
    knee = 0.8 * top * a.clamp(max=1.0) / a  # below it f -> a f; above, a line up to (top, top)
    source = torch.where(hz <= a * knee, hz / a, knee + (hz - a * knee) * (top - knee) / (top - a * knee))
    pos = (hertz_to_mel(source.numpy(), "slaney") - mels[0]) / (mels[1] - mels[0])  # fractional source bin
    pos = torch.from_numpy(pos).clamp(0, bins - 1).to(features.device)
    low = pos.floor().long().clamp(max=bins - 2)
    frac = (pos - low).to(features.dtype)[:, :, None]
    pick = lambda idx: features.gather(1, idx[:, :, None].expand(-1, -1, features.shape[2]))  # noqa: E731
    # interpolated values stay within their neighbours, so the extractor's floor (8 below the window's
    # maximum in log10) still holds
    return pick(low) * (1 - frac) + pick(low + 1) * frac
