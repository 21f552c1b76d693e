"""Evaluation: WER/CER per language with intervals, speed, reports and sweeps."""
