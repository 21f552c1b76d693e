"""The healing variants of research/healing/variants.py: each does what its study says it does, and with
every variant field at its default the variant healing is the product's `heal`."""

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from liteasr.calibration.calibrate import calibrate
from liteasr.data.audio import load_audio, read_dataset, sample
from liteasr.factorize.compress import compress_
from liteasr.models import whisper
from liteasr.models.hf.modeling_lite_whisper import LowRankLinear
from liteasr.planning.plan import LayerRank, RankPlan
from liteasr.refine import HealConfig, heal
from liteasr.refine.heal import relative_error
from research.healing import augment, variants
from research.healing.variants import VariantConfig, frame_weights, heal_variant


def plan_for(model, ranks: dict[str, int]) -> RankPlan:
    return RankPlan({k: LayerRank(ranks.get(k), m.in_features, m.out_features, 1.0, "")
                     for k, m in whisper.encoder_linears(model).items()}, "test")


@pytest.mark.parametrize("seeds", [1, 2])
def test_the_default_variant_is_the_product_recipe(random_lite, seeds):
    """VariantConfig with only HealConfig's fields set heals exactly as the product's heal (same weights)."""
    loaded, clips, lite = random_lite
    fields = dict(steps=4, eval_every=2, lr=1e-3, minutes=None, seed=1, seeds=seeds)
    product, variant = copy.deepcopy(lite), copy.deepcopy(lite)
    a = heal(loaded, product, clips, HealConfig(**fields), progress=False)
    b = heal_variant(loaded, variant, clips, VariantConfig(**fields), progress=False)
    assert (a.steps, a.e2e_loss) == (b.steps, b.e2e_loss)
    for (name, x), (_, y) in zip(product.state_dict().items(), variant.state_dict().items()):
        assert torch.equal(x, y), name


def test_block_stage_never_ends_worse_per_layer(random_lite):
    loaded, clips, lite = random_lite
    report = heal_variant(loaded, copy.deepcopy(lite), clips,
                          VariantConfig(block_epochs=2, steps=4, eval_every=2, block_lr=1e-3, lr=1e-3, minutes=None),
                          progress=False)
    assert report.block_loss and all(after <= start for start, after in report.block_loss)
    assert report.e2e_loss[1] <= report.e2e_loss[0] and "block-wise" in report.summary()


def test_dense_healing_also_moves_the_projections_the_plan_keeps_dense(random_lite):
    loaded, clips, _ = random_lite
    keys = list(whisper.encoder_linears(loaded.model))
    plan = plan_for(loaded.model, {k: 8 for k in keys[::2]})  # every other projection stays dense
    lite = compress_(copy.deepcopy(loaded.model), calibrate(loaded, clips, progress=False), plan)
    linears = whisper.encoder_linears(lite)
    dense = [k for k, m in linears.items() if not isinstance(m, LowRankLinear)]
    assert dense == keys[1::2]
    before = {k: linears[k].weight.clone() for k in dense}
    report = heal_variant(loaded, lite, clips, VariantConfig(steps=6, eval_every=2, lr=1e-3, minutes=None, dense=True),
                  progress=False)
    assert report.e2e_loss[1] < report.e2e_loss[0]
    assert all(not torch.equal(linears[k].weight, before[k]) for k in dense)  # every dense projection took part
    assert not any(p.requires_grad for p in lite.parameters())


def test_cosine_schedule_decays_the_rate_each_step_takes(random_lite, monkeypatch):
    """schedule="cosine": step s of N runs at lr * (1 + cos(pi s / N)) / 2, from lr down towards 0; the
    default keeps lr throughout."""
    loaded, clips, lite = random_lite
    taken = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (taken.append(self.param_groups[0]["lr"]),
                                                                         step(self, *a, **k))[1])
    config = VariantConfig(steps=4, eval_every=2, lr=1e-3, minutes=None, patience=100)
    report = heal_variant(loaded, copy.deepcopy(lite), clips, replace(config, schedule="cosine"), progress=False)
    assert report.steps == 4 and report.e2e_loss[1] <= report.e2e_loss[0]
    assert taken == pytest.approx([1e-3, 0.5e-3 * (1 + 2 ** -0.5), 0.5e-3, 0.5e-3 * (1 - 2 ** -0.5)])
    taken.clear()
    heal_variant(loaded, copy.deepcopy(lite), clips, config, progress=False)
    assert taken == [1e-3] * 4
    with pytest.raises(ValueError, match="schedule must be one of"):
        VariantConfig(schedule="linear")


def test_warmup_raises_the_rate_linearly_then_follows_the_schedule(random_lite, monkeypatch):
    """warmup=W: steps 0..W-1 run at lr (s + 1) / W, then the schedule runs over the steps left; every
    check is reported through on_check."""
    loaded, clips, lite = random_lite
    taken, checks = [], []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (taken.append(self.param_groups[0]["lr"]),
                                                                         step(self, *a, **k))[1])
    config = VariantConfig(steps=6, eval_every=2, lr=1e-3, minutes=None, patience=100, warmup=2)
    heal_variant(loaded, copy.deepcopy(lite), clips, config, progress=False,
                 on_check=lambda s, loss: checks.append(s))
    assert taken == pytest.approx([0.5e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3]) and checks == [2, 4, 6]
    taken.clear()
    heal_variant(loaded, copy.deepcopy(lite), clips, replace(config, schedule="cosine"), progress=False)
    assert taken == pytest.approx([0.5e-3, 1e-3, 1e-3, 0.5e-3 * (1 + 2 ** -0.5), 0.5e-3, 0.5e-3 * (1 - 2 ** -0.5)])
    with pytest.raises(ValueError, match="warmup must be 0 or more and below steps"):
        VariantConfig(steps=10, warmup=10)


def test_weight_averaging_is_kept_only_when_it_lowers_the_held_out_loss(random_lite):
    """`average=True` is the same run, then the mean of its weights over the second half is tried on the
    held-out clips: never a higher held-out loss than the plain run, and a different result only if lower."""
    loaded, clips, lite = random_lite
    config = dict(block_epochs=0, steps=8, eval_every=1, lr=1e-3, minutes=None, patience=100)
    plain, averaged = copy.deepcopy(lite), copy.deepcopy(lite)
    a = heal_variant(loaded, plain, clips, VariantConfig(**config), progress=False)
    b = heal_variant(loaded, averaged, clips, VariantConfig(**config, average=True), progress=False)
    assert (a.steps, a.e2e_loss[0]) == (b.steps, b.e2e_loss[0])
    assert b.e2e_loss[1] <= a.e2e_loss[1]
    moved = [k for (k, x), (_, y) in zip(plain.state_dict().items(), averaged.state_dict().items())
             if not torch.equal(x, y)]
    assert bool(moved) == (b.e2e_loss[1] < a.e2e_loss[1]), (moved, a.e2e_loss, b.e2e_loss)


@pytest.mark.parametrize("metric", ["encoder", "cross"])
def test_healing_without_kl_needs_no_transcripts(random_lite, monkeypatch, metric):
    """kl_weight=0 heals on the encoder output alone: the dense model never decodes (cheap targets, and
    a GPU run can ship the encoder without the decoder), and speed versions of the clips take part."""
    loaded, clips, lite = random_lite
    lite = copy.deepcopy(lite)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded transcripts although kl_weight=0")

    monkeypatch.setattr(variants.generation, "teacher_transcripts", no_decoding)
    report = heal_variant(loaded, lite, clips, VariantConfig(block_epochs=0, steps=4, eval_every=2, lr=1e-3, minutes=None,
                                                 kl_weight=0.0, speeds=(0.9, 1.1), metric=metric), progress=False)
    assert report.steps > 0 and report.e2e_loss[1] <= report.e2e_loss[0]


def test_cross_metric_measures_what_the_decoder_reads(random_lite):
    """The "cross" healing metric weighs an encoder-output error by the decoder's cross-attention key and
    value maps: its squared norm is the summed squared error of every decoder layer's keys and values."""
    loaded, _, _ = random_lite
    error = torch.randn(2, 7, loaded.model.config.d_model)
    read = sum(proj(error).sub(proj.bias if proj.bias is not None else 0).pow(2).sum()
               for layer in loaded.model.model.decoder.layers
               for proj in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj))
    weighed = variants.output_metric(loaded.model, "cross")(error).pow(2).sum()
    assert torch.allclose(weighed.double(), read.detach().double(), rtol=1e-4)
    assert torch.equal(variants.output_metric(loaded.model, "encoder")(error), error)
    with pytest.raises(ValueError, match="unknown healing metric"):
        variants.output_metric(loaded.model, "decoder")
    with pytest.raises(ValueError, match="unknown healing metric"):
        VariantConfig(metric="decoder")  # refused at once, before any dense targets are computed


def test_padding_weight_scales_only_the_frames_after_a_clip(random_lite):
    """pad_weight scales the error of a window's padding frames (after a short clip ends); speech frames
    always weigh 1, and 1 everywhere is the plain relative error."""

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
        VariantConfig(pad_weight=1.5)
    loaded, clips, lite = random_lite  # 1-3 s clips: every padded window is mostly padding
    report = heal_variant(loaded, copy.deepcopy(lite), clips, VariantConfig(steps=4, eval_every=2, lr=1e-3, minutes=None,
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
        report = heal_variant(loaded, copy.deepcopy(lite), clips, config, progress=False)
        assert report.steps == 4 and len(trained_on) == 4 and report.e2e_loss[1] <= report.e2e_loss[0]
        seen.append((trained_on[:], dense_inputs[:]))
    return seen


def test_warping_heals_on_the_dense_output_of_each_warped_window(random_lite, monkeypatch):
    """warp > 0: the dense encoder runs on each step's warped windows for the target; held-out checks stay
    clean, so healing never ends above its start; a seed fixes the warps."""
    config = VariantConfig(steps=4, eval_every=2, lr=1e-3, minutes=None, patience=100, warp=0.1, seed=3)
    (warped, dense), (again, _) = heal_recorded(random_lite, monkeypatch, (config, config))
    clean = dense[:len(dense) - 4]
    for step, x in enumerate(warped):
        assert torch.equal(x, dense[len(dense) - 4 + step]) and torch.equal(x, again[step])
        assert not any(x.shape == y.shape and torch.allclose(x, y) for y in clean)
    with pytest.raises(ValueError, match="warp must be within"):
        VariantConfig(warp=0.5)
    with pytest.raises(ValueError, match="KL term"):
        VariantConfig(warp=0.1, kl_weight=0.1)


def test_mixing_heals_on_the_dense_output_of_each_mixture(random_lite, monkeypatch):
    """mix > 0: each training step's windows are mixtures with other windows, and the dense encoder is run
    on that very mixture for the target; held-out checks stay on clean windows, so healing still never ends
    above its start; a seed fixes the mixtures."""
    config = VariantConfig(steps=4, eval_every=2, lr=1e-3, minutes=None, patience=100, mix=0.5, seed=2)
    seen = heal_recorded(random_lite, monkeypatch, (config, config, replace(config, mix=0.0)))
    (mixed, dense), (again, _), (clean, clean_dense) = seen
    for step, x in enumerate(mixed):
        assert torch.equal(x, dense[len(dense) - 4 + step])  # the target is the dense output of the same mixture
        assert not any(x.shape == y.shape and torch.allclose(x, y) for y in clean_dense)  # not a clean window
        assert torch.equal(x, again[step])
    assert len(clean_dense) == len(dense) - 4  # without mixing: the clean targets only, computed once
    assert all(any(x.shape == y.shape and torch.equal(x, y) for y in clean_dense) for x in clean)
    with pytest.raises(ValueError, match="mix must be within"):
        VariantConfig(mix=1.0)
    with pytest.raises(ValueError, match="KL term"):
        VariantConfig(mix=0.3, kl_weight=0.1)

