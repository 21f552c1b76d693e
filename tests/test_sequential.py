"""Calibration packing and sequential (error-propagating) calibration."""

import copy

import numpy as np
import pytest
import soundfile as sf
import torch

from liteasr import whisper
from liteasr.audio import Clip, read_dataset
from liteasr.calibrate import calibrate, calibration_windows
from liteasr.compress import compress_, threshold_plan
from liteasr.errors import UserError
from liteasr.plan import LayerRank, RankPlan, ThresholdRule
from liteasr.sequential import compress_sequential


@pytest.fixture
def long_and_short(tmp_path):
    clips = []
    for i, seconds in enumerate([12, 12, 12, 40]):
        sf.write(tmp_path / f"c{i}.wav", 0.1 * np.ones(16000 * seconds, dtype=np.float32), 16000)
        clips.append(Clip(tmp_path / f"c{i}.wav"))
    return clips


def test_packing_modes(long_and_short):
    lengths = lambda mode: [len(w) / 16000 for w in calibration_windows(long_and_short, mode)]  # noqa: E731
    assert lengths("pad") == [12, 12, 12, 30, 10]  # each clip alone, long ones split
    assert lengths("pack") == [30, 30, 16]  # 76 s of speech in full windows
    assert lengths("mix") == [12, 12, 30, 22]  # clips 0, 2 padded; 1, 3 packed
    with pytest.raises(UserError):
        list(calibration_windows(long_and_short, "squash"))


def test_packed_calibration_counts_windows(random_whisper_dir, long_and_short):
    loaded = whisper.load(str(random_whisper_dir))
    stats = calibrate(loaded, long_and_short, progress=False, packing="pack")
    assert stats.meta["windows"] == 3 and stats.meta["packing"] == "pack"


@pytest.fixture(scope="module")
def setup(random_whisper_dir, noise_clips):
    loaded = whisper.load(str(random_whisper_dir))
    clips = read_dataset(noise_clips).clips
    return loaded, clips, calibrate(loaded, clips, progress=False)


def test_sequential_at_full_rank_reproduces_the_model(setup):
    loaded, clips, _ = setup
    plan = RankPlan({k: LayerRank(m.out_features, m.in_features, m.out_features, 1, "")
                     for k, m in whisper.encoder_linears(loaded.model).items()})
    lite, _ = compress_sequential(loaded, clips, plan, progress=False)
    feats = whisper.features(loaded.processor, [np.zeros(16000, np.float32)])
    torch.testing.assert_close(whisper.encoder_output(lite, feats), whisper.encoder_output(loaded.model, feats),
                               atol=1e-4, rtol=1e-4)


def test_sequential_statistics_see_compressed_predecessors(setup):
    loaded, clips, parallel = setup
    plan = threshold_plan(loaded.model, parallel, ThresholdRule(0.6, 0.6, rank_multiple=8))
    assert any(v.rank for k, v in plan.layers.items() if k.startswith("layers.0"))
    lite, seq = compress_sequential(loaded, clips, plan, progress=False)
    # Layer 0 sees the same inputs either way; layer 1 sees the output of a compressed layer 0.
    torch.testing.assert_close(seq.layers["layers.0.q_proj"].outer, parallel.layers["layers.0.q_proj"].outer)
    assert not torch.allclose(seq.layers["layers.1.q_proj"].outer, parallel.layers["layers.1.q_proj"].outer)
    assert whisper.low_rank_config(lite) == whisper.low_rank_config(compress_(copy.deepcopy(loaded.model), parallel, plan))
