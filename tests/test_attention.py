"""Self-attention in reduced dimension: exact against the unfused low-rank model, used where it saves FLOPs."""

import copy
import json

import pytest
import torch
from transformers.models.whisper.modeling_whisper import WhisperAttention

from liteasr.models import whisper
from liteasr.data.audio import load_audio, read_dataset, sample
from liteasr.calibration.calibrate import calibrate
from liteasr.checkpoint import Provenance, save_checkpoint
from liteasr.factorize.compress import compress_
from liteasr.planning.flops import attention_cost, best_attention_modes, encoder_cost
from liteasr.models.hf.modeling_lite_whisper import LiteEncoderAttention, set_attention_modes
from liteasr.planning.plan import LayerRank, RankPlan
from liteasr.decoding.transcribe import transcribe

RANKS = {"q_proj": 48, "k_proj": 40, "v_proj": 56, "out_proj": 96}  # below head_dim 64 for q/k/v


@pytest.fixture(scope="module")
def low_rank_tiny(tiny_en, speech, tmp_path_factory):
    stats = calibrate(tiny_en, sample(read_dataset(speech / "vctk_p239").clips, 8, seed=1), progress=False)
    plan = RankPlan({k: LayerRank(RANKS.get(whisper.split_key(k)[1]), m.in_features, m.out_features, 0, "test")
                     for k, m in whisper.encoder_linears(tiny_en.model).items()}, "test")
    lite = compress_(copy.deepcopy(tiny_en.model), stats, plan)
    out = tmp_path_factory.mktemp("attn") / "lite"
    save_checkpoint(lite, tiny_en.processor, out, Provenance("tiny.en", encoder_cost(tiny_en.model)))
    return lite, out


def unfused(model):
    """The plain low-rank model: Hugging Face attention over LowRankLinear projections."""
    ref = copy.deepcopy(model)
    for layer in ref.model.encoder.layers:
        a = layer.self_attn
        if isinstance(a, LiteEncoderAttention):
            std = WhisperAttention(a.num_heads * a.head_dim, a.num_heads, config=ref.config)
            std.q_proj, std.k_proj, std.v_proj, std.out_proj = a.q_proj, a.k_proj, a.v_proj, a.out_proj
            layer.self_attn = std
    return ref


def test_auto_picks_reduced_below_head_dim_and_records_it(low_rank_tiny):
    lite, out = low_rank_tiny
    assert best_attention_modes(lite) == [{"scores": True, "values": True}] * 4  # ranks < 64
    config = json.loads((out / "config.json").read_text())
    assert config["attention_modes"] == [{"scores": True, "values": True}] * 4
    loaded = whisper.load(str(out))
    assert all(l.self_attn.reduce_scores and l.self_attn.reduce_values for l in loaded.model.model.encoder.layers)
    forced = whisper.load(str(out), attention="standard")
    assert not any(l.self_attn.reduce_scores for l in forced.model.model.encoder.layers)


def test_a_lite_model_prices_its_dense_original_exactly(low_rank_tiny, tiny_en):
    """`info`'s dense column: the original's parameters to the one (key projections have no bias)."""
    lite, _ = low_rank_tiny
    assert encoder_cost(lite, dense=True) == encoder_cost(tiny_en.model)


def test_reduced_attention_lowers_flops_only_below_head_dim(low_rank_tiny, tiny_en):
    lite, _ = low_rank_tiny
    attn = lite.model.encoder.layers[0].self_attn
    std, red = sum(attention_cost(attn, 1500, False, False)), sum(attention_cost(attn, 1500, True, True))
    assert red < 0.9 * std  # widths 40-56 (padded to 56) instead of 64 per head
    # With ranks above the head dimension the reduced form costs more, so auto keeps the standard path.
    assert best_attention_modes(tiny_en.model) == [{"scores": False, "values": False}] * 4


@pytest.mark.parametrize("mode", [{"scores": True, "values": False}, {"scores": False, "values": True},
                                  {"scores": True, "values": True}, {"scores": False, "values": False}])
def test_reduced_attention_is_exact_on_real_activations(low_rank_tiny, tiny_en, speech, mode):
    lite, _ = low_rank_tiny
    audios = [load_audio(c.path) for c in read_dataset(speech / "dc_tts").clips[:2]]
    feats = whisper.features(tiny_en.processor, audios)
    exact = whisper.encoder_output(unfused(lite).double(), feats.double())  # float64: the exact output
    # the float32 rounding of the plain low-rank model (1e-5 of the output's scale; it depends on the CPU's
    # kernels): the reduced path multiplies in another order (measured 1.0-2.3x that rounding), while a
    # wrong term would be off by orders of magnitude more
    rounding = (whisper.encoder_output(unfused(lite), feats).double() - exact).abs().max()
    model = copy.deepcopy(lite)
    set_attention_modes(model.model.encoder.layers, [mode] * 4)
    got = whisper.encoder_output(model, feats)
    error = (got.double() - exact).abs().max()
    assert error <= max(4 * rounding, 1e-5 * exact.abs().max())


def test_identical_greedy_transcripts_with_either_path(low_rank_tiny, tiny_en, speech):
    _, out = low_rank_tiny
    audios = [load_audio(c.path) for c in read_dataset(speech / "ljspeech").clips[:4]]
    texts = {a: transcribe(whisper.load(str(out), attention=a), audios, progress=False, warmup=False).texts
             for a in ("reduced", "standard")}
    assert texts["reduced"] == texts["standard"]
    assert any(t.strip() for t in texts["reduced"])


def test_fused_first_stage_follows_weight_changes(low_rank_tiny):
    lite, _ = low_rank_tiny
    model = copy.deepcopy(lite)
    attn = model.model.encoder.layers[0].self_attn
    first = attn._weights()["first"].clone()
    with torch.no_grad():
        attn.q_proj.weight1.mul_(2)
    assert not torch.equal(attn._weights()["first"], first)
