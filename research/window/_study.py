"""What research/window's development studies share: their options and their development draws."""

import argparse
from pathlib import Path

from liteasr.evaluation.report import load_eval_sets


def add_study_args(p: argparse.ArgumentParser, json_default: str) -> None:
    p.add_argument("--floor", type=float, default=5.0, help="shortest window, seconds (benchmarks/window.py's)")
    p.add_argument("--samples", type=int, default=80, help="development clips per set (seed 0)")
    p.add_argument("--work", type=Path, default=Path("runs/window"), help="benchmarks/window.py's --work")
    p.add_argument("--json", type=Path, default=Path(json_default))


def development_sets(speech: Path, split: dict, samples: int) -> list:
    """research/window/steps.py's development draws: seed 0 of librispeech_other and speechocean's other
    speakers (benchmarks/window.py reports on seed 1)."""
    return load_eval_sets([str(speech / "librispeech_other"), str(split["speechocean_heldout"])], samples, seed=0)
