"""Bad input of every class gets one clear line and a non-zero exit; outputs are never half-written."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from safetensors.torch import load_file

from liteasr.atomic import atomic_dir
from liteasr.data.audio import load_audio, windows
from liteasr.errors import UserError
from cli_helpers import assert_user_error, liteasr


def tone(seconds=1.0, rate=16000, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


# --- audio that must be accepted -------------------------------------------------------------

@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
def test_any_sample_rate_is_resampled_to_16k(tmp_path, rate):
    sf.write(tmp_path / "a.wav", tone(2.0, rate), rate)
    audio = load_audio(tmp_path / "a.wav")
    assert audio.dtype == np.float32 and abs(len(audio) - 32000) <= 2


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_bit_depths(tmp_path, subtype):
    sf.write(tmp_path / "a.wav", tone(), 16000, subtype=subtype)
    np.testing.assert_allclose(load_audio(tmp_path / "a.wav"), tone(), atol=2e-2)


@pytest.mark.parametrize("channels", [2, 6])
def test_stereo_and_multichannel_are_mixed_down(tmp_path, channels):
    sf.write(tmp_path / "a.flac", tone(1.0, 16000, channels), 16000)
    np.testing.assert_allclose(load_audio(tmp_path / "a.flac"), tone(), atol=1e-4)


def test_silence_and_clipping_are_valid_audio(tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros(16000), 16000)
    sf.write(tmp_path / "clipped.wav", np.clip(10 * tone(), -1, 1), 16000)
    assert not load_audio(tmp_path / "silence.wav").any()
    assert np.abs(load_audio(tmp_path / "clipped.wav")).max() <= 1.0


def test_long_clips_are_split_into_30s_windows_for_calibration():
    parts = windows(np.zeros(16000 * 70, dtype=np.float32))
    assert [len(p) for p in parts] == [480000, 480000, 160000]


# --- audio that must be refused ---------------------------------------------------------------

def make_bad(kind, d):
    if kind == "corrupt":
        sf.write(d / "x.flac", tone(3.0), 16000)
        raw = (d / "x.flac").read_bytes()
        (d / "x.flac").write_bytes(raw[:60] + bytes(200) + raw[260:])
        return d / "x.flac", ""
    if kind == "truncated":
        sf.write(d / "x.flac", tone(3.0), 16000)
        (d / "x.flac").write_bytes((d / "x.flac").read_bytes()[:30])
        return d / "x.flac", "cannot read audio"
    if kind == "not_audio":
        (d / "x.wav").write_text("RIFF? no, just text")
        return d / "x.wav", "cannot read audio"
    if kind == "empty":
        sf.write(d / "x.wav", np.zeros(0), 16000)
        return d / "x.wav", "empty"
    if kind == "nan":
        x = tone()
        x[100] = np.nan
        sf.write(d / "x.wav", x, 16000, subtype="FLOAT")
        return d / "x.wav", "NaN"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["truncated", "not_audio", "empty", "nan"])
def test_bad_audio_is_refused_by_name_before_the_model_runs(kind, tmp_path, random_whisper_dir, noise_clips):
    data = tmp_path / "data"
    data.mkdir()
    for p in sorted(noise_clips.glob("*.wav"))[:3]:
        (data / p.name).write_bytes(p.read_bytes())
    bad, reason = make_bad(kind, data)
    r = liteasr("compress", random_whisper_dir, "--calibration", data, "-o", tmp_path / "out")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("liteasr: error:") and bad.name in line and reason in line
    assert "calibrating" not in r.stderr  # stopped before any heavy work
    assert not (tmp_path / "out").exists()

    r = liteasr("compress", random_whisper_dir, "--calibration", data, "-o", tmp_path / "out", "--on-bad-audio", "skip",
                "--threshold", "0.9")
    assert r.returncode == 0, r.stderr
    assert f"skipped {bad}" in r.stderr
    assert bad.name in (tmp_path / "out" / "README.md").read_text()  # the report lists it too


def test_corrupt_audio_is_refused_or_read(tmp_path):
    bad, _ = make_bad("corrupt", tmp_path)
    try:  # libsndfile may recover part of a damaged FLAC; it must never crash or return garbage types
        audio = load_audio(bad)
        assert audio.dtype == np.float32 and np.isfinite(audio).all()
    except UserError as exc:
        assert "x.flac" in str(exc)


# --- manifests and folders --------------------------------------------------------------------

@pytest.mark.parametrize("case, content, message", [
    ("wrong_field", '{"path": "a.wav", "text": "x"}\n', 'no "audio" field'),
    ("missing_file", '{"audio": "nope.wav", "text": "x"}\n', "does not exist"),
    ("bad_json", '{"audio": \n', "not valid JSON"),
    ("duplicate", '{"audio": "a.wav", "text": "x"}\n{"audio": "a.wav", "text": "y"}\n', "duplicate"),
    ("empty", "\n", "no entries"),
])
def test_bad_manifests(case, content, message, tmp_path, random_whisper_dir):
    sf.write(tmp_path / "a.wav", tone(), 16000)
    (tmp_path / "m.jsonl").write_text(content)
    r = liteasr("calibrate", random_whisper_dir, "--calibration", tmp_path / "m.jsonl", "-o", tmp_path / "s.st")
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_empty_folder(tmp_path, random_whisper_dir):
    (tmp_path / "empty").mkdir()
    r = liteasr("calibrate", random_whisper_dir, "--calibration", tmp_path / "empty", "-o", tmp_path / "s.st")
    assert r.returncode == 2 and "contains no audio files" in r.stderr


# --- models and options -----------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--threshold", "0"], "threshold must be in (0, 1]"),
    (["--threshold", "1.01:0.9"], "threshold must be in (0, 1]"),
    (["--rank-multiple", "0"], "rank multiple must be positive"),
    (["--rank-multiple", "-16"], "rank multiple must be positive"),
])
def test_bad_options(args, message, tmp_path, random_whisper_dir, noise_clips):
    r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, "-o", tmp_path / "o", *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_pickled_weights_are_not_loaded(tmp_path, random_whisper_dir):
    d = tmp_path / "pickled"
    d.mkdir()
    (d / "config.json").write_text((random_whisper_dir / "config.json").read_text())
    (d / "pytorch_model.bin").write_bytes(b"not even a pickle")
    r = liteasr("info", d)
    assert r.returncode == 2 and "cannot load model weights" in r.stderr


def test_debug_shows_the_traceback(tmp_path):
    r = liteasr("--debug", "info", tmp_path / "missing", subprocess=True)
    assert r.returncode != 0 and "Traceback" in r.stderr


# --- safe output ------------------------------------------------------------------------------

def test_failed_write_keeps_the_previous_output(tmp_path):
    out = tmp_path / "ck"
    out.mkdir()
    (out / "good").write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_dir(out, overwrite=True) as tmp:
            (tmp / "half").write_text("partial")
            raise RuntimeError("disk full")
    assert (out / "good").read_text() == "previous" and not (out / "half").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_outputs_that_cannot_be_written_are_refused_before_the_work(tmp_path, random_whisper_dir, noise_clips):
    """A folder given as a JSON file, a file in the output's path: one line when the command starts (eval used to
    evaluate, then fail with IsADirectoryError)."""
    from liteasr.atomic import atomic_file, check_writable

    (tmp_path / "a_file").write_text("x")
    r = liteasr("eval", random_whisper_dir, "--data", noise_clips, "--json", tmp_path)
    assert r.returncode == 2 and f"argument --json: {tmp_path} is a folder: give a file name" in r.stderr
    r = liteasr("eval", random_whisper_dir, "--data", noise_clips, "--json", tmp_path / "a_file" / "out.json")
    assert r.returncode == 2 and "a_file is not a folder" in r.stderr and "transcribing" not in r.stderr
    r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, "-o", tmp_path / "a_file" / "lite")
    assert_user_error(r, "cannot write", "a_file is not a folder")
    with pytest.raises(UserError, match="is a folder: give a file name"):
        with atomic_file(tmp_path):
            pass
    assert check_writable(tmp_path / "new" / "deeper" / "out.json", overwrite=False, file=True).name == "out.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_previous_output_intact(sig, tmp_path, random_whisper_dir, noise_clips):
    out = tmp_path / "ck"
    out.mkdir()
    (out / "good").write_text("previous")
    data = tmp_path / "many"
    data.mkdir()
    for i in range(40):  # long enough to be interrupted mid-calibration
        sf.write(data / f"c{i}.wav", tone(20.0), 16000)
    proc = subprocess.Popen([sys.executable, "-m", "liteasr", "compress", str(random_whisper_dir), "--calibration",
                             str(data), "-o", str(out), "--overwrite", "--batch-size", "1",
                             "--shard-windows", "1"],  # progress after every window, so the signal lands mid-run
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"),
                            # a shell's background job ignores SIGINT, and a child inherits that: restore it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    deadline = time.time() + 120
    while "calibrating" not in seen and time.time() < deadline:
        seen += proc.stderr.read(1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert (out / "good").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "many"]


def test_same_seed_gives_bit_identical_checkpoints(tmp_path, random_whisper_dir, noise_clips):
    for name in ("a", "b"):
        r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, "--calibration-samples", "6",
                    "--seed", "3", "--threshold", "0.9", "-o", tmp_path / name)
        assert r.returncode == 0, r.stderr
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert (tmp_path / "a" / "config.json").read_text() == (tmp_path / "b" / "config.json").read_text()


# --- numerics ---------------------------------------------------------------------------------

def test_degenerate_covariances_factor_cleanly():
    import torch
    from torch import nn

    from liteasr.factorize.lowrank import factorize
    from liteasr.calibration.stats import LayerStats

    layer = nn.Linear(32, 24).double()
    with torch.no_grad():
        layer.weight[:5] = 0  # five constant output channels
    x = torch.randn(10, 32, dtype=torch.float64)  # fewer frames than dimensions
    s = LayerStats.empty(24)
    with torch.no_grad():
        s.add(layer(x))
    values, vectors = s.spectrum()
    assert (values >= 0).all() and torch.isfinite(vectors).all()
    assert values[10:].max() < 1e-9 * values[0]  # rank <= frames - 1
    lr = factorize(layer, s.mean, vectors, 16)
    with torch.no_grad():
        torch.testing.assert_close(lr(x), layer(x))  # exact on the data it saw
        assert torch.isfinite(lr(torch.randn(4, 32, dtype=torch.float64))).all()


def test_non_finite_activations_name_the_layer(tmp_path, random_whisper_dir, noise_clips):
    import shutil

    from safetensors.torch import load_file, save_file

    bad = tmp_path / "inf-model"
    shutil.copytree(random_whisper_dir, bad)
    weights = load_file(bad / "model.safetensors")
    weights["model.encoder.layers.1.fc1.weight"][0, 0] = float("inf")
    save_file(weights, bad / "model.safetensors", metadata={"format": "pt"})
    r = liteasr("compress", bad, "--calibration", noise_clips, "-o", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "layers.1.fc1" in r.stderr and "non-finite" in r.stderr
    assert not (tmp_path / "o").exists()


def test_impossible_target_through_the_cli(tmp_path, random_whisper_dir, noise_clips):
    r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, "--target-params", "0.01",
                "--allocation", "normalized", "-o", tmp_path / "o")
    assert r.returncode == 2 and "cannot be met" in r.stderr


def test_int16_ct2_weights_are_dequantized():
    from liteasr.models.ct2 import CT2Weights

    w = np.linspace(-0.5, 0.5, 12, dtype=np.float32).reshape(3, 4)
    scale = np.float32(2**10 / np.abs(w).max())  # CTranslate2's int16 rule: one scale per tensor
    m = CT2Weights("WhisperSpec", 3, {"x/weight": np.round(w * scale).astype(np.int16), "x/weight_scale": scale})
    np.testing.assert_allclose(m.get("x/weight"), w, atol=1 / scale)
