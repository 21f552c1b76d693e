"""The library API: one verb, typed configs, the same pipeline the CLI runs."""

import json
import subprocess
import sys

import pytest

import liteasr
from liteasr.errors import UserError


def test_compress_save_load_transcribe(random_whisper_dir, noise_clips, tmp_path):
    lite = liteasr.compress(str(random_whisper_dir), [str(noise_clips)],
                            liteasr.CompressConfig(threshold="0.9", calibration_samples=6))
    assert isinstance(lite, liteasr.CompressedModel) and lite.heal_report is None
    assert lite.cost.params < lite.base_cost.params and "6 clips" in lite.calibration
    path = lite.save(tmp_path / "lite")
    model = liteasr.load(str(path))
    assert type(model.model.config).__name__ == "LiteWhisperConfig"
    assert json.loads((path / "config.json").read_text())["model_type"] == "lite-whisper"
    import numpy as np

    out = liteasr.transcribe(model, [np.zeros(16000, np.float32)], progress=False, warmup=False)
    assert len(out.texts) == 1 and out.languages == ["en"]
    # audio files, as a list or one alone, read as the CLI reads them
    from liteasr.data.audio import load_audio
    from liteasr.errors import UserError

    clip = noise_clips / "clip0.wav"
    array = liteasr.transcribe(model, [load_audio(clip)], progress=False, warmup=False).texts
    assert liteasr.transcribe(model, [clip], progress=False, warmup=False).texts == array
    assert liteasr.transcribe(model, str(clip), progress=False, warmup=False).texts == array
    with pytest.raises(UserError, match="nope.wav: no such file"):
        liteasr.transcribe(model, [noise_clips / "nope.wav"], progress=False, warmup=False)


def test_config_mistakes_are_errors_before_any_work(random_whisper_dir, noise_clips):
    for config, message in [(liteasr.CompressConfig(target_params=0.7, target_flops=0.7), "at most one of"),
                            (liteasr.CompressConfig(refine="polish"), "refine must be one of"),
                            (liteasr.CompressConfig(allocation="guess"), "allocation must be one of"),
                            (liteasr.CompressConfig(threshold="0.9", target_params=0.6), "cannot be combined")]:
        with pytest.raises(UserError, match=message):
            liteasr.compress(str(random_whisper_dir), [str(noise_clips)], config)


def test_with_no_ranks_chosen_the_default_is_the_recipe_measured_best():
    """No target, threshold or plan: a 0.7 target (measured damage, then healing) given audio; the paper's rule
    from statistics alone, where neither measured damage nor healing can run. A threshold is the paper's rule."""
    from liteasr.pipeline import DEFAULT_TARGET_PARAMS, PAPER_RULE
    from liteasr.planning.allocate import Budget
    from liteasr.planning.plan import ThresholdRule

    default = liteasr.CompressConfig()
    assert DEFAULT_TARGET_PARAMS == 0.7 and default.budget() == Budget("params", 0.7)
    assert default.refinement(has_audio=True) == "heal"
    assert default.budget(has_audio=False) is None and default.refinement(has_audio=False) == "none"
    assert default.rule() == ThresholdRule.parse(PAPER_RULE, 16) == ThresholdRule(0.99, 0.999, 16)
    paper = liteasr.CompressConfig(threshold="0.9:0.95")
    assert paper.budget() is None and paper.refinement(has_audio=True) == "none"
    assert paper.rule() == ThresholdRule(0.9, 0.95, 16)


def test_import_is_light_and_documents_the_api():
    code = ("import sys, liteasr; assert 'torch' not in sys.modules, 'import liteasr loaded torch'; "
            "assert 'calibrate' in liteasr.compress.__doc__; print(sorted(liteasr.__all__))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for name in ("compress", "CompressConfig", "load", "transcribe", "evaluate", "export", "heal"):
        assert name in r.stdout
    with pytest.raises(AttributeError):
        liteasr.no_such_thing  # noqa: B018
