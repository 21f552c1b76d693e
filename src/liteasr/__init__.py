"""liteasr: smaller, faster Whisper encoders from calibration statistics, without retraining.

Flow: audio -> CovarianceStats (calibrate) -> RankPlan -> compress_ -> checkpoint -> evaluation.
"""

__version__ = "0.1.0"
