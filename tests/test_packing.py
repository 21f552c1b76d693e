"""Calibration packing: how clips become 30 s windows."""


import numpy as np
import pytest
import soundfile as sf

from liteasr import whisper
from liteasr.audio import Clip, read_dataset
from liteasr.calibrate import calibrate, calibration_windows
from liteasr.errors import UserError


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

