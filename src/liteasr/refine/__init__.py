"""Correcting the factors after compression so they hold on voices the calibration never heard:
`refit` (closed form, training-free) and `heal` (a short optimization on unlabeled audio)."""

from .heal import HealConfig, HealReport, heal
from .refit import refit

__all__ = ["HealConfig", "HealReport", "heal", "refit"]
