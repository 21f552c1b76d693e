"""Calibration packing: how clips become 30 s windows."""


import numpy as np
import pytest
import soundfile as sf

from liteasr.models import whisper
from liteasr.data.audio import Clip, change_speed
from liteasr.calibration.calibrate import calibrate, calibration_windows
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



def test_speed_versions_are_windows_of_their_own(long_and_short):
    lengths = [round(len(w) / 16000, 2) for w in calibration_windows(long_and_short[:1], "pad", speeds=(0.8, 1.0, 1.25))]
    assert lengths == [15.0, 12.0, 9.6]  # one clip, three speeds: 12 s / factor each


def test_speed_change_moves_pitch_and_tempo():
    t = np.arange(16000 * 2) / 16000
    tone = np.sin(2 * np.pi * 200 * t).astype(np.float32)
    fast = change_speed(tone, 1.1)
    assert abs(len(fast) - len(tone) / 1.1) <= 2
    peak = np.argmax(np.abs(np.fft.rfft(fast))) * 16000 / len(fast)
    assert abs(peak - 220) < 1.0  # 200 Hz played 1.1x faster
    assert change_speed(tone, 1.0) is tone
    with pytest.raises(UserError, match="speed factor"):
        change_speed(tone, 3.0)


def test_calibration_records_its_speeds(random_whisper_dir, long_and_short):
    loaded = whisper.load(str(random_whisper_dir))
    stats = calibrate(loaded, long_and_short[:2], progress=False, packing="pad", speeds=(0.9, 1.1))
    assert stats.meta["windows"] == 4 and stats.meta["speeds"] == [0.9, 1.1]
