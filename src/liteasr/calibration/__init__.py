"""Calibration: statistics of every encoder projection's outputs over unlabeled audio."""
