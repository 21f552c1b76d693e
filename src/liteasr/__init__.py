"""liteasr: smaller, faster Whisper encoders from a little unlabeled audio.

    import liteasr
    lite = liteasr.compress("tiny.en", ["calib/"], liteasr.CompressConfig(target_params=0.7))
    lite.save("tiny.en-lite")
    model = liteasr.load("tiny.en-lite")                       # PyTorch, an ONNX export or ctranslate2:SPEC
    print(liteasr.transcribe(model, [audio]).texts)
    text, segments, *_ = liteasr.transcribe_segments(model, audio, liteasr.DecodingOptions(word_timestamps=True))
    results = liteasr.evaluate(["tiny.en", "tiny.en-lite"], ["eval.jsonl"])

The flow, one subpackage per stage: models (Whisper adapter: load, convert, prompt, surgery) -> data
(audio in) -> calibration (output statistics) -> planning (damage, ranks for a budget) -> factorize
(two thin matrices per projection) -> refine (refit, healing) -> checkpoint -> runtime (PyTorch, ONNX
Runtime, CTranslate2; export) -> decoding (transcription) -> evaluation / serve; `pipeline` strings the
stages together, `cli` is the command line.

The names below are imported on first use, so `import liteasr` stays light.
"""

__version__ = "0.1.0"

_API = {
    "compress": "liteasr.pipeline", "CompressConfig": "liteasr.pipeline", "CompressedModel": "liteasr.pipeline",
    "calibrate_and_plan": "liteasr.pipeline", "calibrate": "liteasr.calibration.calibrate",
    "CovarianceStats": "liteasr.calibration.stats", "RankPlan": "liteasr.planning.plan",
    "HealConfig": "liteasr.refine", "heal": "liteasr.refine", "refit": "liteasr.refine",
    "load": "liteasr.runtime", "export": "liteasr.runtime.export",
    "transcribe": "liteasr.decoding.transcribe", "DecodingOptions": "liteasr.decoding.transcribe",
    "transcribe_segments": "liteasr.decoding.transcribe",
    "evaluate": "liteasr.evaluation.report",
}
_RENAMED = {"evaluate": "evaluate_models"}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'liteasr' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_API[name]), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
