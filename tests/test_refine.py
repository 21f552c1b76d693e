"""Refit and healing: the corrections that make the factors hold on voices calibration never heard."""

import copy
import importlib
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from liteasr.models import whisper
from liteasr.refine import augment
from liteasr.data.audio import load_audio, read_dataset, sample
from liteasr.calibration.calibrate import calibrate
from liteasr.checkpoint import Provenance, save_checkpoint
from liteasr.factorize.compress import compress_, threshold_plan
from liteasr.planning.flops import encoder_cost
from liteasr.models.hf.modeling_lite_whisper import LiteEncoderAttention, LowRankLinear, set_attention_modes
from liteasr.planning.plan import LayerRank, RankPlan, ThresholdRule
from liteasr.refine import HealConfig, heal, refit
from liteasr.refine.heal import split_clips
from liteasr.refine.refit import RIDGE_GRID, RegressionStats, anchor, choose_ridge, held_out_error, solve
from liteasr.decoding.transcribe import transcribe


def plan_for(model, ranks: dict[str, int]) -> RankPlan:
    return RankPlan({k: LayerRank(ranks.get(k), m.in_features, m.out_features, 1.0, "")
                     for k, m in whisper.encoder_linears(model).items()}, "test")


def effective(module: LowRankLinear) -> tuple[torch.Tensor, torch.Tensor]:
    return (module.weight1 @ module.weight2).double(), module.bias.double()


@pytest.fixture(scope="module")
def calibration(tiny_en, speech):
    clips = sample(read_dataset(speech / "librispeech_calib").clips, 6, seed=0)
    return clips, calibrate(tiny_en, clips, progress=False)


@pytest.mark.parametrize("keys", [("layers.0.q_proj", "layers.0.k_proj", "layers.0.v_proj"), ("layers.0.fc1",)])
def test_refit_equals_pca_factors_when_inputs_coincide(tiny_en, calibration, keys):
    """Layer 0's q/k/v (and its fc1 while attention stays dense) see the same input in the dense and the
    compressed model, so the anchored refit must give exactly the plain PCA factors."""
    clips, stats = calibration
    plan = plan_for(tiny_en.model, {k: 64 for k in keys})
    pca = compress_(copy.deepcopy(tiny_en.model), stats, plan)
    # a fixed ridge: choosing it on held-out clips would pack the windows differently from the statistics
    refitted = refit(tiny_en, plan, clips, ridge=1e-2, progress=False)
    for key in keys:
        (w_pca, b_pca), (w_ref, b_ref) = effective(whisper.encoder_linears(pca)[key]), effective(
            whisper.encoder_linears(refitted)[key])
        scale = w_pca.abs().max()
        assert (w_ref - w_pca).abs().max() < 1e-5 * scale, key
        assert (b_ref - b_pca).abs().max() < 1e-5 * b_pca.abs().max().clamp_min(1), key


def test_refit_fits_later_layers_to_the_dense_model(tiny_en, calibration, speech):
    """Past the first layer, the refit sees the compressed path's inputs: its factors differ from PCA and,
    with the ridge chosen on held-out calibration clips, the encoder output on unseen speakers is closer to
    the dense model's (measured: 27% less squared error than PCA; a fixed ridge of 1e-4 overfits the six
    calibration clips and ends 43% above PCA)."""
    clips, stats = calibration
    plan = threshold_plan(tiny_en.model, stats, ThresholdRule(0.99, 0.999))
    pca = compress_(copy.deepcopy(tiny_en.model), stats, plan)
    refitted = refit(tiny_en, plan, clips, progress=False)
    assert whisper.low_rank_config(refitted) == whisper.low_rank_config(pca)
    held = [load_audio(c.path) for c in sample(read_dataset(speech / "librispeech_other").clips, 4, seed=1)]
    feats = whisper.features(tiny_en.processor, held)
    ref = whisper.encoder_output(tiny_en.model, feats)
    error = lambda m: float((whisper.encoder_output(m, feats) - ref).pow(2).sum())  # noqa: E731
    assert error(refitted) < 0.9 * error(pca)


def test_ridge_is_chosen_on_held_out_windows():
    """A projection whose compressed-path input is the dense input plus noise: fitted on few samples, a
    tiny ridge chases the noise, and the held-out error tells the selection so."""
    torch.manual_seed(0)
    dense = torch.nn.Linear(24, 16)
    fitted, held = RegressionStats(24), RegressionStats(24)
    for stats, n in ((fitted, 40), (held, 400)):
        x_dense = torch.randn(n, 24)
        stats.add(x_dense + 0.5 * torch.randn(n, 24), x_dense)
    w0 = anchor(dense)
    errors = {r: held_out_error(solve(w0, fitted.gram / fitted.count, fitted.cross @ w0 / fitted.count, 16, r)[1],
                                held, w0) for r in RIDGE_GRID}
    chosen = choose_ridge(dense, fitted, held, 16)
    assert errors[chosen] == min(errors.values()) and chosen > RIDGE_GRID[0]
    assert errors[RIDGE_GRID[0]] > errors[chosen]


def test_held_out_clips_are_disjoint_and_seeded(noise_clips):
    clips = read_dataset(noise_clips).clips
    train, held = split_clips(clips, 0.25, seed=3)
    assert len(held) == 2 and not set(train) & set(held) and len(train) + len(held) == len(clips)
    assert split_clips(clips, 0.25, seed=3) == (train, held)


@pytest.fixture(scope="module")
def random_lite(random_whisper_dir, noise_clips):
    loaded = whisper.load(str(random_whisper_dir))
    clips = read_dataset(noise_clips).clips
    stats = calibrate(loaded, clips, progress=False)
    plan = threshold_plan(loaded.model, stats, ThresholdRule(0.8, 0.8, rank_multiple=8))
    lite = refit(loaded, plan, clips, progress=False)
    set_attention_modes(whisper.encoder_layers(lite), [{"scores": True, "values": True}] * 2)
    return loaded, clips, lite


def test_healing_reaches_every_factor_and_never_ends_worse(random_lite):
    loaded, clips, lite = random_lite
    lite = copy.deepcopy(lite)
    assert any(isinstance(layer.self_attn, LiteEncoderAttention) for layer in whisper.encoder_layers(lite))
    before = {k: v.clone() for k, v in lite.state_dict().items()}
    report = heal(loaded, lite, clips, HealConfig(block_epochs=2, steps=6, eval_every=2, block_lr=1e-3, lr=1e-3,
                                                 minutes=None), progress=False)
    assert all(after <= start for start, after in report.block_loss)
    assert report.e2e_loss[1] <= report.e2e_loss[0]
    changed = {k for k, v in lite.state_dict().items() if not torch.equal(v, before[k])}
    factored = [k for k, m in whisper.encoder_linears(lite).items() if isinstance(m, LowRankLinear)]
    assert changed, "healing moved nothing"
    # only factors move (no LayerNorm unless asked), and the q/k/v first stages behind the fused GEMM do
    assert all(".weight1" in k or ".weight2" in k or ".bias" in k for k in changed), changed
    assert all("encoder" in k for k in changed)
    assert any(k.endswith("q_proj.weight1") for k in changed) and any(k.endswith("v_proj.weight1") for k in changed)
    assert factored and not any(p.requires_grad for p in lite.parameters())


def test_dense_healing_also_moves_the_projections_the_plan_keeps_dense(random_lite):
    loaded, clips, _ = random_lite
    keys = list(whisper.encoder_linears(loaded.model))
    plan = plan_for(loaded.model, {k: 8 for k in keys[::2]})  # every other projection stays dense
    lite = compress_(copy.deepcopy(loaded.model), calibrate(loaded, clips, progress=False), plan)
    linears = whisper.encoder_linears(lite)
    dense = [k for k, m in linears.items() if not isinstance(m, LowRankLinear)]
    assert dense == keys[1::2]
    before = {k: linears[k].weight.clone() for k in dense}
    report = heal(loaded, lite, clips, HealConfig(steps=6, eval_every=2, lr=1e-3, minutes=None, dense=True),
                  progress=False)
    assert report.e2e_loss[1] < report.e2e_loss[0]
    assert all(not torch.equal(linears[k].weight, before[k]) for k in dense)  # every dense projection took part
    assert not any(p.requires_grad for p in lite.parameters())


def test_healing_is_deterministic_for_a_seed(random_lite):
    loaded, clips, lite = random_lite
    config = HealConfig(block_epochs=1, steps=3, eval_every=3, lr=1e-3, block_lr=1e-3, minutes=None, seed=5)
    a, b = copy.deepcopy(lite), copy.deepcopy(lite)
    heal(loaded, a, clips, config, progress=False)
    heal(loaded, b, clips, config, progress=False)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_cosine_schedule_decays_the_rate_each_step_takes(random_lite, monkeypatch):
    """schedule="cosine": step s of N runs at lr * (1 + cos(pi s / N)) / 2, from lr down towards 0; the
    default keeps lr throughout."""
    loaded, clips, lite = random_lite
    taken = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (taken.append(self.param_groups[0]["lr"]),
                                                                         step(self, *a, **k))[1])
    config = HealConfig(steps=4, eval_every=2, lr=1e-3, minutes=None, patience=100)
    report = heal(loaded, copy.deepcopy(lite), clips, replace(config, schedule="cosine"), progress=False)
    assert report.steps == 4 and report.e2e_loss[1] <= report.e2e_loss[0]
    assert taken == pytest.approx([1e-3, 0.5e-3 * (1 + 2 ** -0.5), 0.5e-3, 0.5e-3 * (1 - 2 ** -0.5)])
    taken.clear()
    heal(loaded, copy.deepcopy(lite), clips, config, progress=False)
    assert taken == [1e-3] * 4
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        HealConfig(schedule="linear")


def test_weight_averaging_is_kept_only_when_it_lowers_the_held_out_loss(random_lite):
    """`average=True` is the same run, then the mean of its weights over the second half is tried on the
    held-out clips: never a higher held-out loss than the plain run, and a different result only if lower."""
    loaded, clips, lite = random_lite
    config = dict(block_epochs=0, steps=8, eval_every=1, lr=1e-3, minutes=None, patience=100)
    plain, averaged = copy.deepcopy(lite), copy.deepcopy(lite)
    a = heal(loaded, plain, clips, HealConfig(**config), progress=False)
    b = heal(loaded, averaged, clips, HealConfig(**config, average=True), progress=False)
    assert (a.steps, a.e2e_loss[0]) == (b.steps, b.e2e_loss[0])
    assert b.e2e_loss[1] <= a.e2e_loss[1]
    moved = [k for (k, x), (_, y) in zip(plain.state_dict().items(), averaged.state_dict().items())
             if not torch.equal(x, y)]
    assert bool(moved) == (b.e2e_loss[1] < a.e2e_loss[1]), (moved, a.e2e_loss, b.e2e_loss)


def test_a_soup_is_the_mean_of_its_seeded_runs(random_lite):
    """seeds=2 heals twice from the same start (seeds 3 and 4) and averages: the same weights as two
    separate runs averaged by hand, and different from either run."""
    loaded, clips, lite = random_lite
    config = HealConfig(block_epochs=0, steps=6, eval_every=2, lr=1e-3, minutes=None, seed=3)
    runs = [copy.deepcopy(lite) for _ in range(2)]
    for k, run in enumerate(runs):
        heal(loaded, run, clips, replace(config, seed=3 + k), progress=False)
    soup = copy.deepcopy(lite)
    report = heal(loaded, soup, clips, replace(config, seeds=2), progress=False)
    assert len(report.members) == 2 and report.steps == sum(m.steps for m in report.members) > 0
    assert "soup of 2 runs" in report.summary()
    moved = 0
    for name, p in soup.state_dict().items():
        a, b = runs[0].state_dict()[name], runs[1].state_dict()[name]
        assert torch.equal(p, ((a.double() + b.double()) / 2).to(p.dtype)), (name, report.summary())
        moved += not torch.equal(a, b)
    assert moved, report.summary()
    with pytest.raises(ValueError, match="seeds must be 1 or more"):
        HealConfig(seeds=0)


@pytest.mark.parametrize("metric", ["encoder", "cross"])
def test_healing_without_kl_needs_no_transcripts(random_lite, monkeypatch, metric):
    """kl_weight=0 heals on the encoder output alone: the dense model never decodes (cheap targets, and
    a GPU run can ship the encoder without the decoder), and speed versions of the clips take part."""
    heal_module = importlib.import_module("liteasr.refine.heal")  # the module (the package exports the function)
    loaded, clips, lite = random_lite
    lite = copy.deepcopy(lite)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded transcripts although kl_weight=0")

    monkeypatch.setattr(heal_module.generation, "teacher_transcripts", no_decoding)
    report = heal(loaded, lite, clips, HealConfig(block_epochs=0, steps=4, eval_every=2, lr=1e-3, minutes=None,
                                                 kl_weight=0.0, speeds=(0.9, 1.1), metric=metric), progress=False)
    assert report.steps > 0 and report.e2e_loss[1] <= report.e2e_loss[0]


def test_cross_metric_measures_what_the_decoder_reads(random_lite):
    """The "cross" healing metric weighs an encoder-output error by the decoder's cross-attention key and
    value maps: its squared norm is the summed squared error of every decoder layer's keys and values."""
    heal_module = importlib.import_module("liteasr.refine.heal")
    loaded, _, _ = random_lite
    error = torch.randn(2, 7, loaded.model.config.d_model)
    read = sum(proj(error).sub(proj.bias if proj.bias is not None else 0).pow(2).sum()
               for layer in loaded.model.model.decoder.layers
               for proj in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj))
    weighed = heal_module._metric(loaded.model, "cross")(error).pow(2).sum()
    assert torch.allclose(weighed.double(), read.detach().double(), rtol=1e-4)
    assert torch.equal(heal_module._metric(loaded.model, "encoder")(error), error)
    with pytest.raises(ValueError, match="unknown healing metric"):
        heal_module._metric(loaded.model, "decoder")
    with pytest.raises(ValueError, match="unknown healing metric"):
        HealConfig(metric="decoder")  # refused at once, before any dense targets are computed


def test_padding_weight_scales_only_the_frames_after_a_clip(random_lite):
    """pad_weight scales the error of a window's padding frames (after a short clip ends); speech frames
    always weigh 1, and 1 everywhere is the plain relative error."""
    from liteasr.refine.heal import frame_weights, relative_error

    assert [whisper.speech_frames(n) for n in (1, 320, 321, 16000, 10**7)] == [1, 1, 2, 50, 1500]
    ref = torch.randn(2, 6, 4)
    out = ref.clone()
    out[:, 3:] += 1.0  # an error on the frames after the third only
    assert frame_weights(torch.tensor([3, 6]), 6, 1.0) is None
    assert frame_weights(torch.tensor([2, 6]), 6, 0.25).tolist() == [[1, 1, 0.25, 0.25, 0.25, 0.25], [1] * 6]
    assert float(relative_error(out, ref, frame_weights(torch.tensor([3, 3]), 6, 0.0))) == 0.0
    assert float(relative_error(out, ref, frame_weights(torch.tensor([4, 4]), 6, 0.0))) > 0.0
    assert torch.allclose(relative_error(out, ref), relative_error(out, ref, torch.ones(2, 6)))
    with pytest.raises(ValueError, match="pad_weight"):
        HealConfig(pad_weight=1.5)
    loaded, clips, lite = random_lite  # 1-3 s clips: every padded window is mostly padding
    report = heal(loaded, copy.deepcopy(lite), clips, HealConfig(steps=4, eval_every=2, lr=1e-3, minutes=None,
                                                                pad_weight=0.1), progress=False)
    assert report.steps > 0 and report.e2e_loss[1] <= report.e2e_loss[0]


def test_mixed_features_are_those_of_the_mixed_audio(tiny_en, speech):
    """mix_features adds two windows in mel power: close to the features of the two clips' audio added
    (at amplitudes sqrt(1 - w) and sqrt(w)), far closer than a mix of the log-mel values, and exact at
    the ends: weight 0 is the first window, a window mixed with itself is itself."""
    a, b = (load_audio(c.path) for c in sample(read_dataset(speech / "librispeech_calib").clips, 2, seed=0))
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    first, second = (whisper.features(tiny_en.processor, [x, x]) for x in (a, b))
    assert torch.equal(augment.mix_features(first, second, torch.tensor([0.0, 0.0])), first)
    assert torch.allclose(augment.mix_features(first, first, torch.tensor([0.3, 0.7])), first, atol=1e-5)
    for w in (0.1, 0.5):
        audio = whisper.features(tiny_en.processor, [(1 - w) ** 0.5 * a + w ** 0.5 * b])[0]
        mixed = augment.mix_features(first, second, torch.tensor([w, w]))[0]
        naive = (1 - w) * first[0] + w * second[0]
        assert (mixed - audio).abs().mean() < 0.5 * (naive - audio).abs().mean()
        assert (mixed - audio).abs().mean() < 0.06  # features span about 0.4 (standard deviation)


def test_warped_features_are_those_of_the_shifted_voice(tiny_en):
    """warp_features stretches the frequency axis: the features of tones at f, warped by a, are close to the
    features of the tones at a f (below the knee), far closer than the unwarped ones; a = 1 changes nothing."""
    t = np.arange(3 * 16000) / 16000
    tones = lambda fs: sum(0.1 * np.sin(2 * np.pi * f * t) for f in fs).astype(np.float32)  # noqa: E731
    base = [700, 1500, 2500, 3500]
    first = whisper.features(tiny_en.processor, [tones(base)])
    assert torch.allclose(augment.warp_features(first, torch.tensor([1.0])), first, atol=1e-5)
    for a in (0.9, 1.1):
        shifted = whisper.features(tiny_en.processor, [tones([a * f for f in base])])[..., :300]  # the 3 s of tones
        warped = augment.warp_features(first, torch.tensor([a]))[..., :300]
        assert (warped - shifted).abs().mean() < 0.3 * (first[..., :300] - shifted).abs().mean()
        peaks = lambda x: sorted(x[0, :, 100].topk(4).indices.tolist())  # noqa: E731
        assert peaks(warped) == peaks(shifted) != peaks(first[..., :300])
    two = augment.warp_features(torch.cat([first, first]), torch.tensor([1.0, 1.1]))  # each window its own factor
    assert torch.allclose(two[0], first[0], atol=1e-5) and not torch.allclose(two[1], first[0], atol=1e-2)


def heal_recorded(random_lite, monkeypatch, configs) -> list[tuple[list, list]]:
    """Heal the random lite model once per config (4 steps each, never ending above its start), recording
    the windows the student trained on and every input the dense encoder ran on."""
    loaded, clips, lite = random_lite
    dense_inputs, trained_on = [], []
    output, forward = whisper.encoder_output, whisper.encoder_forward
    monkeypatch.setattr(whisper, "encoder_output", lambda m, f: (dense_inputs.append(f.clone()), output(m, f))[1])
    monkeypatch.setattr(whisper, "encoder_forward", lambda m, f: (
        trained_on.append(f.clone()) if torch.is_grad_enabled() else None, forward(m, f))[1])
    seen = []
    for config in configs:
        dense_inputs.clear(), trained_on.clear()
        report = heal(loaded, copy.deepcopy(lite), clips, config, progress=False)
        assert report.steps == 4 and len(trained_on) == 4 and report.e2e_loss[1] <= report.e2e_loss[0]
        seen.append((trained_on[:], dense_inputs[:]))
    return seen


def test_warping_heals_on_the_dense_output_of_each_warped_window(random_lite, monkeypatch):
    """warp > 0: the dense encoder runs on each step's warped windows for the target; held-out checks stay
    clean, so healing never ends above its start; a seed fixes the warps."""
    config = HealConfig(steps=4, eval_every=2, lr=1e-3, minutes=None, patience=100, warp=0.1, seed=3)
    (warped, dense), (again, _) = heal_recorded(random_lite, monkeypatch, (config, config))
    clean = dense[:len(dense) - 4]
    for step, x in enumerate(warped):
        assert torch.equal(x, dense[len(dense) - 4 + step]) and torch.equal(x, again[step])
        assert not any(x.shape == y.shape and torch.allclose(x, y) for y in clean)
    with pytest.raises(ValueError, match="warp must be within"):
        HealConfig(warp=0.5)
    with pytest.raises(ValueError, match="KL term"):
        HealConfig(warp=0.1, kl_weight=0.1)


def test_mixing_heals_on_the_dense_output_of_each_mixture(random_lite, monkeypatch):
    """mix > 0: each training step's windows are mixtures with other windows, and the dense encoder is run
    on that very mixture for the target; held-out checks stay on clean windows, so healing still never ends
    above its start; a seed fixes the mixtures."""
    config = HealConfig(steps=4, eval_every=2, lr=1e-3, minutes=None, patience=100, mix=0.5, seed=2)
    seen = heal_recorded(random_lite, monkeypatch, (config, config, replace(config, mix=0.0)))
    (mixed, dense), (again, _), (clean, clean_dense) = seen
    for step, x in enumerate(mixed):
        assert torch.equal(x, dense[len(dense) - 4 + step])  # the target is the dense output of the same mixture
        assert not any(x.shape == y.shape and torch.allclose(x, y) for y in clean_dense)  # not a clean window
        assert torch.equal(x, again[step])
    assert len(clean_dense) == len(dense) - 4  # without mixing: the clean targets only, computed once
    assert all(any(x.shape == y.shape and torch.equal(x, y) for y in clean_dense) for x in clean)
    with pytest.raises(ValueError, match="mix must be within"):
        HealConfig(mix=1.0)
    with pytest.raises(ValueError, match="KL term"):
        HealConfig(mix=0.3, kl_weight=0.1)


AUTOMODEL_SCRIPT = r"""
import sys, torch
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert "liteasr" not in sys.modules
feats = torch.load(sys.argv[2])
with torch.inference_mode():
    ids = model.generate(feats, do_sample=False, num_beams=1, max_new_tokens=int(sys.argv[4]))
torch.save(ids, sys.argv[3])
"""


@pytest.mark.slow
def test_healed_tiny_en_loads_with_transformers_and_attention_forms_agree(tiny_en, calibration, speech, tmp_path):
    clips, stats = calibration
    # a mild compression: a damaged model loops, and uncapped generate() would decode 448 tokens
    plan = threshold_plan(tiny_en.model, stats, ThresholdRule(0.999, 0.9999))
    lite = compress_(copy.deepcopy(tiny_en.model), stats, plan)  # as `--refine heal` starts
    report = heal(tiny_en, lite, clips[:4], HealConfig(block_epochs=1, steps=2, eval_every=1, minutes=None),
                  progress=False)
    assert report.e2e_loss[1] <= report.e2e_loss[0]
    save_checkpoint(lite, tiny_en.processor, tmp_path / "healed",
                    Provenance("tiny.en", encoder_cost(tiny_en.model), "test", plan.method, "test"))
    audios = [load_audio(c.path) for c in read_dataset(speech / "librispeech_other").clips[:2]]
    reduced = whisper.load(str(tmp_path / "healed"), attention="reduced")
    standard = whisper.load(str(tmp_path / "healed"), attention="standard")
    texts = transcribe(reduced, audios, progress=False, warmup=False).texts
    assert texts == transcribe(standard, audios, progress=False, warmup=False).texts
    assert all(len(reduced.processor.tokenizer(t).input_ids) < 90 for t in texts)  # so the cap of 96 cuts nothing
    feats = whisper.features(tiny_en.processor, audios)
    torch.save(feats, tmp_path / "feats.pt")
    subprocess.run([sys.executable, "-c", AUTOMODEL_SCRIPT, str(tmp_path / "healed"), str(tmp_path / "feats.pt"),
                    str(tmp_path / "ids.pt"), "96"], check=True, cwd=tmp_path)
    other = reduced.processor.batch_decode(torch.load(tmp_path / "ids.pt"), skip_special_tokens=True)
    assert [t.strip() for t in other] == texts
    assert json.loads((tmp_path / "healed" / "config.json").read_text())["model_type"] == "lite-whisper"
