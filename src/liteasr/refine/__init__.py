"""Correcting the factors after compression so they hold on voices the calibration never heard:
`refit` (closed form, training-free) and `heal` (a short optimization on unlabeled audio)."""

from .heal import HealConfig, HealReport, heal
from .refit import refit

# What `compress --refine auto` does with a --target-*: chosen on benchmarks/refine.md, where no
# correction has yet beaten plain PCA by an interval that excludes zero on unseen speakers (healing is
# better on native read speech and worse on non-native speech, both within noise).
DEFAULT_FOR_TARGETS = "none"

__all__ = ["DEFAULT_FOR_TARGETS", "HealConfig", "HealReport", "heal", "refit"]
