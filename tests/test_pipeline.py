"""Calibrate -> plan -> compress -> checkpoint -> reload, on a random Whisper and on the real tiny.en."""

import copy
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from liteasr.models import generation, whisper
from liteasr.data.audio import load_audio, read_dataset, sample
from liteasr.calibration.calibrate import calibrate
from liteasr.checkpoint import Provenance, save_checkpoint
from liteasr.factorize.compress import compress_, spectra, threshold_plan
from liteasr.errors import UserError
from liteasr.evaluation.evaluate import corpus_wer
from liteasr.planning.flops import encoder_cost
from liteasr.models.hf.modeling_lite_whisper import LowRankLinear
from liteasr.planning.plan import LayerRank, RankPlan, ThresholdRule
from liteasr.decoding.transcribe import transcribe


def compress_and_save(loaded, stats, rule_or_plan, out):
    model = copy.deepcopy(loaded.model)
    eig = spectra(stats, progress=False)
    plan = rule_or_plan if isinstance(rule_or_plan, RankPlan) else threshold_plan(model, stats, rule_or_plan, eig)
    lite = compress_(model, stats, plan, eig)
    save_checkpoint(lite, loaded.processor, out, Provenance("test", encoder_cost(loaded.model), "test clips", plan.method))
    return lite, plan


def full_rank_plan(model) -> RankPlan:
    return RankPlan({k: LayerRank(m.out_features, m.in_features, m.out_features, 1.0, "full")
                     for k, m in whisper.encoder_linears(model).items()}, "full")


def encoder_out(loaded, audios):
    return whisper.encoder_output(loaded.model, whisper.features(loaded.processor, audios))


@pytest.fixture(scope="module")
def random_setup(random_whisper_dir, noise_clips):
    loaded = whisper.load(str(random_whisper_dir))
    stats = calibrate(loaded, read_dataset(noise_clips).clips, batch_size=4, progress=False, packing="pad")
    return loaded, stats


def test_calibration_counts_every_frame_of_every_window(random_setup):
    loaded, stats = random_setup
    assert stats.meta["windows"] == 10 and stats.meta["clips"] == 10
    assert set(stats.layers) == set(whisper.encoder_linears(loaded.model))
    assert all(s.count == 10 * 1500 for s in stats.layers.values())


def test_full_rank_compression_reproduces_the_model(random_setup, noise_clips, tmp_path):
    loaded, stats = random_setup
    lite, _ = compress_and_save(loaded, stats, full_rank_plan(loaded.model), tmp_path / "full")
    audios = [load_audio(c.path) for c in read_dataset(noise_clips).clips[:2]]
    feats = whisper.features(loaded.processor, audios)
    ref = whisper.encoder_output(loaded.model, feats)
    torch.testing.assert_close(whisper.encoder_output(lite, feats), ref, atol=1e-4, rtol=1e-4)
    reloaded = whisper.load(str(tmp_path / "full"))
    torch.testing.assert_close(encoder_out(reloaded, audios), ref, atol=1e-4, rtol=1e-4)


def test_checkpoint_layout_and_config(random_setup, tmp_path):
    loaded, stats = random_setup
    lite, plan = compress_and_save(loaded, stats, ThresholdRule(0.9, 0.9, rank_multiple=8), tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["model_type"] == "lite-whisper"
    assert config["auto_map"]["AutoModel"] == "modeling_lite_whisper.LiteWhisperForConditionalGeneration"
    assert len(config["low_rank_config"]) == 2
    expected = [{} for _ in range(2)]
    for key, layer in plan.layers.items():
        if layer.rank is not None:
            i, name = whisper.split_key(key)
            expected[i][name] = layer.rank
    assert config["low_rank_config"] == expected and any(expected)
    weights = load_file(tmp_path / "ck" / "model.safetensors")
    for i, ranks in enumerate(expected):
        for name, rank in ranks.items():
            prefix = f"model.encoder.layers.{i}.{'self_attn.' if name not in ('fc1', 'fc2') else ''}{name}"
            assert weights[f"{prefix}.weight1"].shape[1] == rank and weights[f"{prefix}.weight2"].shape[0] == rank
            assert f"{prefix}.bias" in weights and f"{prefix}.weight" not in weights
    for name in ("generation_config.json", "preprocessor_config.json", "tokenizer.json", "README.md",
                 "modeling_lite_whisper.py", "configuration_lite_whisper.py"):
        assert (tmp_path / "ck" / name).is_file(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_existing_output_is_not_overwritten(random_setup, tmp_path):
    loaded, stats = random_setup
    (tmp_path / "ck").mkdir()
    with pytest.raises(UserError, match="already exists"):
        compress_and_save(loaded, stats, ThresholdRule(0.9, 0.9), tmp_path / "ck")


def test_stats_from_another_model_are_refused(random_setup, tiny_en):
    _, stats = random_setup
    with pytest.raises(UserError, match="another model"):
        compress_(copy.deepcopy(tiny_en.model), stats, full_rank_plan(tiny_en.model))


AUTOMODEL_SCRIPT = r"""
import sys, torch
from transformers import AutoModel, pipeline
from transformers.utils import logging
logging.set_verbosity_error()
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert "liteasr" not in sys.modules, "liteasr was imported"
assert type(model).__name__ == "LiteWhisperForConditionalGeneration", type(model)
feats = torch.load(sys.argv[2])
with torch.inference_mode():
    out = model.model.encoder(feats).last_hidden_state
    ids = model.generate(feats, do_sample=False, num_beams=1)
# transformers' ASR pipeline, on the raw audio: Whisper's path (it treated "lite-whisper" as a CTC model)
asr = pipeline("automatic-speech-recognition", model=sys.argv[1], trust_remote_code=True)
audio = torch.load(sys.argv[4])
text = asr({"raw": audio.numpy(), "sampling_rate": 16000})["text"]
torch.save({"encoder": out, "ids": ids, "pipeline": (asr.type, text)}, sys.argv[3])
"""


@pytest.mark.slow
def test_real_tiny_en_compress_reload_three_ways(tiny_en, speech, tmp_path):
    calib = sample(read_dataset(speech / "vctk_p239").clips, 16, seed=0)
    stats = calibrate(tiny_en, calib, progress=False)
    lite, plan = compress_and_save(tiny_en, stats, ThresholdRule(0.999, 0.9999), tmp_path / "lite")
    ranks = [layer.rank for layer in plan.layers.values()]
    assert any(r is not None for r in ranks)  # it did compress something
    assert encoder_cost(lite).params < encoder_cost(tiny_en.model).params

    eval_clips = read_dataset(speech / "dc_tts").clips[:8]
    audios = [load_audio(c.path) for c in eval_clips]
    refs = [c.text for c in eval_clips]

    # 1. liteasr itself
    ours = whisper.load(str(tmp_path / "lite"))
    assert isinstance(whisper.encoder_linears(ours.model)[next(k for k, v in plan.layers.items() if v.rank)], LowRankLinear)
    feats = whisper.features(ours.processor, audios[:2])
    enc = whisper.encoder_output(ours.model, feats)
    torch.testing.assert_close(enc, whisper.encoder_output(lite, feats))
    base_text = transcribe(tiny_en, audios, progress=False, warmup=False).texts
    lite_text = transcribe(ours, audios, progress=False, warmup=False).texts
    base_wer, lite_wer = corpus_wer(refs, base_text).wer, corpus_wer(refs, lite_text).wer
    assert base_wer < 15, base_text  # the real model reads real speech
    assert lite_wer <= base_wer + 5, (lite_text, base_text)

    # 2. plain transformers in a process that never imports liteasr
    torch.save(feats, tmp_path / "feats.pt")
    torch.save(torch.from_numpy(audios[0]), tmp_path / "audio.pt")
    subprocess.run([sys.executable, "-c", AUTOMODEL_SCRIPT, str(tmp_path / "lite"), str(tmp_path / "feats.pt"),
                    str(tmp_path / "out.pt"), str(tmp_path / "audio.pt")], check=True, cwd=tmp_path)
    other = torch.load(tmp_path / "out.pt")
    torch.testing.assert_close(other["encoder"], enc)
    texts = ours.processor.batch_decode(other["ids"], skip_special_tokens=True)
    assert [t.strip() for t in texts] == lite_text[:2]
    assert other["pipeline"][0] == "seq2seq_whisper" and other["pipeline"][1].strip() == lite_text[0]
    assert json.loads((tmp_path / "lite" / "config.json").read_text())["model_type"] == "lite-whisper"

    # 3. a checkpoint laid out like the public efficient-speech ones: every projection listed,
    #    only config + safetensors + their code, no tokenizer or processor files.
    public = tmp_path / "public"
    public.mkdir()
    full = full_rank_plan(tiny_en.model)
    config = json.loads((tmp_path / "lite" / "config.json").read_text())
    config["low_rank_config"] = [{n: 384 if n != "fc1" else 384 for n in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")}
                                 for _ in range(4)]
    lite_full = compress_(copy.deepcopy(tiny_en.model), stats, RankPlan(
        {k: LayerRank(384, v.in_features, v.out_features, 1.0, "") for k, v in full.layers.items()}, "public"))
    assert lite_full.config.low_rank_config == config["low_rank_config"]
    for key in ("transformers_version", "torch_dtype", "dtype"):
        config.pop(key, None)
    (public / "config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in lite_full.state_dict().items() if k != "proj_out.weight"}
    save_file(state, public / "model.safetensors", metadata={"format": "pt"})
    loaded_public = whisper.load(str(public))
    assert loaded_public.processor.tokenizer.decode([50257]) == "<|startoftranscript|>"
    pub_text = transcribe(loaded_public, audios[:2], progress=False, warmup=False).texts
    assert pub_text == transcribe(whisper.LoadedModel(lite_full, tiny_en.processor, public, "x"), audios[:2],
                                  progress=False, warmup=False).texts


@pytest.mark.slow
def test_long_audio_is_transcribed_long_form_not_cut(tiny_en, speech):
    import numpy as np

    clips = read_dataset(speech / "ljspeech").clips[:12]
    parts = [load_audio(c.path) for c in clips]
    audio = np.concatenate(parts)
    assert len(audio) > 40 * 16000
    [text] = transcribe(tiny_en, [audio], progress=False, warmup=False).texts
    # Words from the last clip (well past 30 s) must be there; WER over the whole is like short-form.
    refs = " ".join(c.text for c in clips)
    assert corpus_wer([refs], [text]).wer < 20, text
    last_words = set(clips[-1].text.lower().replace(",", "").replace(".", "").split())
    assert len(last_words & set(text.lower().replace(",", "").replace(".", "").split())) >= len(last_words) // 2


@pytest.mark.slow
def test_own_greedy_loop_gives_generates_tokens(tiny_en, speech):
    """liteasr's decoding loop (one window at a time through the encoder on CPU, finished clips leaving the
    batch, the vocabulary projection as `W @ hidden.T`) must give exactly generate()'s tokens: in a
    batch whose clips finish at different steps, alone, and when the token budget cuts decoding short."""
    from liteasr.models.generation import token_budget

    def _generate(model, **inputs):
        with torch.inference_mode():
            return model.generate(**inputs, do_sample=False, num_beams=1)

    model = tiny_en.model
    eos = model.generation_config.eos_token_id
    audios = [load_audio(c.path) for c in sample(read_dataset(speech / "librispeech_other").clips, 6, seed=1)]
    feats = whisper.features(tiny_en.processor, audios)
    with torch.inference_mode():
        torch.testing.assert_close(whisper.encode(model, feats), model.model.encoder(feats).last_hidden_state,
                                   rtol=1e-4, atol=1e-4)
    budget = token_budget(max(len(a) for a in audios), model.generation_config.max_length)
    encoded = whisper.encode(model, feats)
    prompt = generation.build_prompt(model.generation_config, [None] * len(audios))
    ours = generation.greedy_ids(model, encoded, prompt, budget)
    assert torch.equal(ours, _generate(model, input_features=feats, max_new_tokens=budget))
    lengths = (ours != eos).sum(1).tolist()
    assert len(set(lengths)) > 2, lengths  # the batch really shrank along the way
    for i in (lengths.index(min(lengths)), lengths.index(max(lengths))):
        alone = generation.greedy_ids(model, encoded[i : i + 1], prompt[i : i + 1], budget)
        assert alone[0].tolist() == ours[i, : alone.shape[1]].tolist()
        assert alone.shape[1] == lengths[i]  # no trailing end-of-text, as generate
    cut = min(lengths) + 2  # some clips end within the budget, the others are cut at it
    assert torch.equal(generation.greedy_ids(model, encoded, prompt, cut),
                       _generate(model, input_features=feats, max_new_tokens=cut))


def test_features_and_logits_equal_transformers_own(tiny_en, speech):
    """The two shortcuts of the decoding path compute what transformers does: features extracted one clip
    at a time equal the feature extractor's batch bit for bit, and `vocabulary_logits` (the product taken
    as W @ hidden.T, a lone row doubled) equals the model's own `proj_out` for one row and for several."""
    audios = [load_audio(c.path) for c in sample(read_dataset(speech / "librispeech_other").clips, 3, seed=2)]
    batch = tiny_en.processor.feature_extractor(audios, sampling_rate=16000, return_tensors="pt").input_features
    assert torch.equal(whisper.features(tiny_en.processor, audios), batch)
    torch.manual_seed(0)
    hidden = torch.randn(3, tiny_en.model.config.d_model)
    with torch.inference_mode():
        for rows in (hidden[:1], hidden):
            logits = generation.vocabulary_logits(tiny_en.model, rows)
            assert logits.shape == (len(rows), tiny_en.model.config.vocab_size)
            torch.testing.assert_close(logits, tiny_en.model.proj_out(rows), rtol=1e-5, atol=1e-4)
