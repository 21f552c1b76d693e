"""ONNX export and the runtimes (PyTorch, ONNX Runtime, CTranslate2) behind one MODEL argument."""

import json

import numpy as np
import onnx
import pytest
import torch

from liteasr import runtime

from liteasr.models import whisper
from liteasr.data.audio import load_audio, read_dataset
from liteasr.models.hf.configuration_lite_whisper import LiteWhisperConfig
from liteasr.models.hf.modeling_lite_whisper import LiteWhisperForConditionalGeneration
from liteasr.runtime.export import export
from liteasr.runtime.layout import ENCODER
from liteasr.decoding.transcribe import DecodingOptions, transcribe, transcribe_segments
from liteasr.errors import UserError
from cli_helpers import assert_user_error, liteasr
from test_attention import low_rank_tiny  # noqa: F401  (real tiny.en, q/k/v below head_dim: reduced attention)

INTEGER_OPS = {"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}


@pytest.fixture(scope="module")
def random_lite_dir(random_whisper_dir, tmp_path_factory):
    """The random Whisper with every encoder projection factored (random factors), layer 0 in reduced
    attention, layer 1 standard: both attention graphs in one small model."""
    values = json.loads((random_whisper_dir / "config.json").read_text())
    for key in ("model_type", "architectures", "transformers_version"):
        values.pop(key, None)
    ranks = {"q_proj": 8, "k_proj": 12, "v_proj": 10, "out_proj": 16, "fc1": 24, "fc2": 24}
    config = LiteWhisperConfig(low_rank_config=[ranks, ranks], attention_modes=[
        {"scores": True, "values": True}, {"scores": False, "values": False}], **values)
    torch.manual_seed(1)
    lite = LiteWhisperForConditionalGeneration(config).eval()
    base = whisper.load(str(random_whisper_dir))
    lite.model.decoder.load_state_dict(base.model.model.decoder.state_dict())
    lite.generation_config = base.model.generation_config
    out = tmp_path_factory.mktemp("random-lite") / "lite"
    lite.save_pretrained(out)
    base.processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lite_onnx(random_lite_dir, tmp_path_factory):
    return export(str(random_lite_dir), tmp_path_factory.mktemp("onnx") / "fp32", progress=False)


def encoder_error(hf_dir, onnx_dir, feats) -> float:
    reference = whisper.encoder_output(whisper.load(str(hf_dir)).model, feats)
    return float(np.abs(runtime.load(str(onnx_dir)).encode(feats) - reference.numpy()).max())


def test_fp32_encoder_matches_pytorch_in_both_attention_forms(random_lite_dir, lite_onnx):
    feats = torch.randn(3, 80, 3000, generator=torch.Generator().manual_seed(0))
    assert encoder_error(random_lite_dir, lite_onnx, feats) < 1e-4
    # reduced attention stays multi-query: keys/values of width r shared by the heads, never padded or expanded
    ops = {n.op_type for n in onnx.load(lite_onnx / ENCODER).graph.node}
    assert not ops & {"Pad", "Expand"}, ops
    manifest = json.loads((lite_onnx / "liteasr_export.json").read_text())
    assert manifest["attention_modes"][0] == {"scores": True, "values": True}


def test_fp32_greedy_tokens_match_pytorch(random_lite_dir, lite_onnx, speech):
    audios = [load_audio(c.path) for c in read_dataset(speech / "ljspeech").clips[:3]]
    theirs = transcribe(whisper.load(str(random_lite_dir)), audios, progress=False, warmup=False).texts
    ours = transcribe(runtime.load(str(lite_onnx)), audios, progress=False, warmup=False).texts
    assert ours == theirs


def test_int8_export_runs_integer_kernels(random_lite_dir, tmp_path, monkeypatch):
    # the fp32 fallback is a timing: on a busy machine every small MatMul of this random model can
    # measure slower in int8 and fall back. Quantize all of them here; the kernels are what is tested.
    from liteasr.runtime import quantize

    monkeypatch.setattr(quantize, "slower_in_int8", lambda shapes, *args, **kwargs: set())
    out = tmp_path / "int8"
    r = liteasr("export", random_lite_dir, "--quantize", "int8", "--output", out)
    assert r.returncode == 0, r.stderr
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(out / ENCODER), options, providers=["CPUExecutionProvider"])
    optimized = {n.op_type for n in onnx.load(tmp_path / "optimized.onnx").graph.node}
    assert optimized & INTEGER_OPS, optimized
    manifest = json.loads((out / "liteasr_export.json").read_text())
    assert manifest["quantize"] == "int8" and manifest["int8_probe"] == "noise"
    kept = manifest["fp32_fallback"]
    assert set(kept) == {"slower in int8", "int8 error"} and not kept["slower in int8"] and kept["int8 error"]
    # the accuracy fallback's MatMuls stay float MatMuls on float weights; the rest became integer ops
    nodes = {n.name: n.op_type for n in onnx.load(out / ENCODER).graph.node}
    assert all(nodes.get(name) == "MatMul" for name in kept["int8 error"]), kept
    # int8 activations are scaled per tensor: a window's encoding must not depend on its batch-mates
    model = runtime.load(str(out))
    feats = np.random.default_rng(0).normal(size=(3, model.config.num_mel_bins, 2 * model.config.max_source_positions))
    feats[1] *= 20  # a loud batch-mate would coarsen everyone's activation scale
    alone = np.concatenate([model.encode(f[None]) for f in feats])
    np.testing.assert_array_equal(model.encode(feats), alone)


def test_int8_weights_are_per_channel_so_small_factor_columns_survive(tmp_path):
    # a factor's columns differ in scale by orders of magnitude (eigenvalues): one scale per tensor would
    # round the small columns to zero
    from onnx import TensorProto, helper, numpy_helper

    from liteasr.runtime.onnx_model import session
    from liteasr.runtime.quantize import quantize_graph

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((64, 32)) * np.logspace(0, -3, 32)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 32])],
                              [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / "fp32.onnx")
    quantize_graph(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", [])
    x = rng.standard_normal((256, 64)).astype(np.float32)
    y = session(tmp_path / "int8.onnx", 1).run(None, {"x": x})[0]
    column_error = np.linalg.norm(y - x @ w, axis=0) / np.linalg.norm(x @ w, axis=0)
    assert column_error.max() < 0.05, column_error  # per tensor: the last columns are all zeros (error 1)


def test_accuracy_fallback_takes_the_fewest_matmuls_carrying_the_share():
    from liteasr.runtime.quantize import least_accurate

    errors = {"a": 0.1, "b": 0.5, "c": 0.3, "d": 0.1}
    assert least_accurate(errors, 0.5) == ["b"]
    assert least_accurate(errors, 0.8) == ["b", "c"]
    assert least_accurate(errors, 0.8, fp32=("b",)) == ["c"]  # already fp32 for speed: its error counts
    assert least_accurate(errors, 0.0) == [] and least_accurate({"a": 0.0}, 0.5) == []


def test_export_help_states_the_int8_error_share_default():
    from liteasr.cli import export as cli_export
    from liteasr.runtime import quantize

    assert cli_export.ERROR_SHARE == quantize.ERROR_SHARE


def test_exported_dir_is_a_model_for_info_transcribe_eval_bench(lite_onnx, speech, tmp_path):
    info = liteasr("info", lite_onnx)
    assert info.returncode == 0 and "onnxruntime" in info.stdout and "8" in info.stdout, info.stderr
    clip = read_dataset(speech / "ljspeech").clips[0].path
    t = liteasr("transcribe", lite_onnx, clip, "--device", "cpu")
    assert t.returncode == 0, t.stderr
    e = liteasr("eval", lite_onnx, "--data", speech / "ljspeech", "--samples", "2", "--json", tmp_path / "e.json")
    assert e.returncode == 0, e.stderr
    result = json.loads((tmp_path / "e.json").read_text())[0]
    assert set(result["encoder_ms"]) == {"batch_1", "batch_8"} and result["datasets"]["ljspeech"]["n"] == 2


def test_ctranslate2_reference_runs_and_benches(lite_onnx, speech, tmp_path):
    clips = read_dataset(speech / "ljspeech").clips[:2]
    ct2 = runtime.load("ctranslate2:tiny.en:int8")
    texts = transcribe(ct2, [load_audio(c.path) for c in clips], progress=False, warmup=False).texts
    from liteasr.evaluation.evaluate import corpus_wer

    assert corpus_wer([c.text for c in clips], texts).wer < 20  # real model, real speech
    r = liteasr("bench", lite_onnx, "--vs", "ctranslate2:tiny.en:int8", "--repeats", "2", "--json", tmp_path / "b.json")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["speedup"] > 0 and report["flop_bound"] > 0


def test_bad_inputs_are_one_line_errors(lite_onnx, random_lite_dir, tmp_path):
    assert_user_error(liteasr("info", "ctranslate2:tiny.en:int3"), "compute type")
    assert_user_error(liteasr("info", "ctranslate2:nosuchmodel"), "nosuchmodel")
    assert_user_error(liteasr("export", random_lite_dir, "--output", lite_onnx), "already exists")
    assert_user_error(liteasr("export", random_lite_dir, "--quantize", "int8", "--int8-error-share", "1.5",
                              "--output", tmp_path / "x"), "--int8-error-share")
    assert_user_error(liteasr("export", random_lite_dir, "--calibration", tmp_path, "--output", tmp_path / "y"),
                      "--quantize int8")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in lite_onnx.iterdir():
        (broken / f.name).write_bytes(f.read_bytes()[:1000] if f.name == ENCODER else f.read_bytes())
    assert_user_error(liteasr("info", broken), "encoder_model.onnx")


@pytest.fixture(scope="module")
def real_lite_onnx(low_rank_tiny, tmp_path_factory):  # noqa: F811
    return export(str(low_rank_tiny[1]), tmp_path_factory.mktemp("real-onnx") / "fp32", progress=False)


@pytest.mark.slow
def test_real_lite_tiny_en_parity_on_real_speech(low_rank_tiny, real_lite_onnx, speech):  # noqa: F811
    _, lite_dir = low_rank_tiny
    out = real_lite_onnx
    audios = [load_audio(c.path) for c in read_dataset(speech / "librispeech_other").clips[:4]]
    loaded = whisper.load(str(lite_dir))
    feats = whisper.features(loaded.processor, audios)
    error = encoder_error(lite_dir, out, feats)
    print(f"fp32 encoder max abs error vs PyTorch: {error:.2e}")
    assert error < 1e-3  # activations of order 1-10
    theirs = transcribe(loaded, audios, progress=False, warmup=False).texts
    onnx = runtime.load(str(out))
    ours = transcribe(onnx, audios, progress=False, warmup=False).texts
    assert ours == theirs and all(t.strip() for t in ours)
    # word timestamps: the checkpoint keeps the alignment heads, the export's decoder graph gives their weights
    assert loaded.generation_config.alignment_heads == whisper.load("tiny.en").generation_config.alignment_heads
    words = [[(w.word, w.start, w.end) for s in transcribe_segments(m, audios[0], DecodingOptions(word_timestamps=True))[1]
              for w in s.words] for m in (loaded, onnx)]
    assert len(words[0]) > 5 and [w[0] for w in words[0]] == [w[0] for w in words[1]]
    assert np.abs(np.array([w[1:] for w in words[0]]) - np.array([w[1:] for w in words[1]])).max() <= 0.021
    onnx.manifest.pop("alignment_heads")  # an export made before word timestamps
    with pytest.raises(UserError, match="exported without word timestamps: export it again"):
        transcribe_segments(onnx, audios[0], DecodingOptions(word_timestamps=True))


@pytest.mark.slow
def test_real_int8_fallback_chosen_on_noise_cuts_the_error_on_speech(low_rank_tiny, real_lite_onnx, speech, tmp_path):  # noqa: F811
    from liteasr.runtime.export import probe_features
    from liteasr.runtime.onnx_model import session
    from liteasr.runtime.quantize import int8_error_by_matmul, least_accurate, quantize_graph

    loaded = whisper.load(str(low_rank_tiny[1]))
    feats = probe_features(loaded, [load_audio(c.path) for c in read_dataset(speech / "librispeech_other").clips[:2]])
    fp32 = real_lite_onnx / ENCODER
    # the default probe is noise (no audio at export): what it picks must help on real speech
    noise_errors = int8_error_by_matmul(fp32, probe_features(loaded, None), tmp_path, threads=2)

    def error(keep):
        quantize_graph(fp32, tmp_path / "int8.onnx", keep)
        outs = [session(p, 2).run(None, {"input_features": feats})[0].astype(np.float64)
                for p in (fp32, tmp_path / "int8.onnx")]
        return float(((outs[1] - outs[0]) ** 2).sum() / (outs[0] ** 2).sum())

    everything, fallback = error([]), error(least_accurate(noise_errors))
    print(f"int8 encoder relative squared error: all MatMuls {everything:.4f}, with the fallback {fallback:.4f}")
    assert everything < 0.02 and fallback < 0.7 * everything


def test_encoder_latency_feeds_each_model_its_own_dtype(random_lite_dir, lite_onnx):
    """One interleaved timing run over models of different dtypes and runtimes (as benchmarks/window_gpu.py
    times fp16 beside fp32): each encoder gets the features in its own dtype."""
    from liteasr.evaluation.bench import encoder_latency

    fp32 = whisper.load(str(random_lite_dir))
    bf16 = whisper.load(str(random_lite_dir), dtype=torch.bfloat16)
    timings = encoder_latency([bf16, fp32, runtime.load(str(lite_onnx))], repeats=2, warmup=1, frames=[600, 600, 600])
    assert [t.runs for t in timings] == [2, 2, 2]
    assert all(t.median_ms > 0 for t in timings)
