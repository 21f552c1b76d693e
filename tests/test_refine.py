"""Refit and healing: the corrections that make the factors hold on voices calibration never heard."""

import copy
import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from liteasr.models import whisper
from liteasr.data.audio import load_audio, read_dataset, sample
from liteasr.calibration.calibrate import calibrate
from liteasr.checkpoint import Provenance, save_checkpoint
from liteasr.factorize.compress import compress_, threshold_plan
from liteasr.planning.flops import encoder_cost
from liteasr.models.hf.modeling_lite_whisper import LiteEncoderAttention, LowRankLinear
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


def test_healing_reaches_every_factor_and_never_ends_worse(random_lite):
    loaded, clips, lite = random_lite
    lite = copy.deepcopy(lite)
    assert any(isinstance(layer.self_attn, LiteEncoderAttention) for layer in whisper.encoder_layers(lite))
    before = {k: v.clone() for k, v in lite.state_dict().items()}
    report = heal(loaded, lite, clips, HealConfig(steps=6, eval_every=2, lr=1e-3, minutes=None), progress=False)
    assert report.e2e_loss[1] <= report.e2e_loss[0]
    changed = {k for k, v in lite.state_dict().items() if not torch.equal(v, before[k])}
    factored = [k for k, m in whisper.encoder_linears(lite).items() if isinstance(m, LowRankLinear)]
    assert changed, "healing moved nothing"
    # only factors move (no LayerNorm, no projection kept dense), and the q/k/v first stages behind the fused GEMM do
    assert all(".weight1" in k or ".weight2" in k or ".bias" in k for k in changed), changed
    assert all("encoder" in k for k in changed)
    assert any(k.endswith("q_proj.weight1") for k in changed) and any(k.endswith("v_proj.weight1") for k in changed)
    assert factored and not any(p.requires_grad for p in lite.parameters())


def test_healing_that_never_beats_its_start_keeps_it_and_says_so(random_lite):
    """A rate so high that every held-out check is worse than the start: the start's weights come back
    exactly, and the report says the unhealed weights were kept (a user asked for healing)."""
    loaded, clips, lite = random_lite
    lite = copy.deepcopy(lite)
    before = {k: v.clone() for k, v in lite.state_dict().items()}
    report = heal(loaded, lite, clips, HealConfig(steps=4, eval_every=1, patience=2, lr=10.0, minutes=None),
                  progress=False)
    assert report.e2e_loss[1] == report.e2e_loss[0] and 0 < report.steps < 4, report.summary()
    assert all(torch.equal(v, before[k]) for k, v in lite.state_dict().items())
    assert report.kept_start and "unhealed weights are kept" in report.summary()
    soup = heal(loaded, copy.deepcopy(lite), clips, HealConfig(steps=4, eval_every=1, patience=2, lr=10.0,
                                                               minutes=None, seeds=2), progress=False)
    assert "runs 1, 2 kept the unhealed weights" in soup.summary()
    healed = heal(loaded, copy.deepcopy(lite), clips, HealConfig(steps=6, eval_every=2, lr=1e-3, minutes=None),
                  progress=False)
    assert healed.e2e_loss[1] < healed.e2e_loss[0] and not healed.kept_start and "unhealed" not in healed.summary()


def test_healing_is_deterministic_for_a_seed(random_lite):
    loaded, clips, lite = random_lite
    config = HealConfig(steps=3, eval_every=3, lr=1e-3, minutes=None, seed=5)
    a, b = copy.deepcopy(lite), copy.deepcopy(lite)
    heal(loaded, a, clips, config, progress=False)
    heal(loaded, b, clips, config, progress=False)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_a_soup_is_the_mean_of_its_seeded_runs(random_lite):
    """seeds=2 heals twice from the same start (seeds 3 and 4) and averages: the same weights as two
    separate runs averaged by hand, and different from either run."""
    loaded, clips, lite = random_lite
    config = HealConfig(steps=6, eval_every=2, lr=1e-3, minutes=None, seed=3)
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


def test_cosine_schedule_decays_the_rate_to_zero_by_the_last_step(monkeypatch):
    """fit follows config.schedule: cosine starts at lr, is half of it mid-run and ends near 0; constant stays."""
    from liteasr.refine.heal import Budget, fit

    applied, step = [], torch.optim.Adam.step

    def spy(self, *args, **kwargs):  # the rate each optimizer step really used
        applied.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)

    def rates(schedule):
        applied.clear()
        w = torch.nn.Parameter(torch.ones(3))
        config = HealConfig(steps=8, lr=0.1, eval_every=100, minutes=None, schedule=schedule)
        fit([w], [(torch.zeros(3),)], [(torch.zeros(3),)], lambda x: ((w - x) ** 2).sum(), config, Budget(None),
            progress=False)
        return list(applied)

    cosine = rates("cosine")
    assert len(cosine) == 8 and cosine[0] == pytest.approx(0.1) and cosine[4] == pytest.approx(0.05)
    assert all(a > b for a, b in zip(cosine, cosine[1:])) and cosine[-1] < 0.01
    assert rates("constant") == [0.1] * 8
    with pytest.raises(ValueError, match="schedule must be one of constant, cosine"):
        HealConfig(schedule="linear")


def test_cosine_follows_the_budget_when_it_ends_the_run_first(monkeypatch):
    """On a machine too slow for every step within the budget, the cosine decays by the budget's time (so
    the run still ends at a low rate) and the last steps get a held-out check."""
    from liteasr.refine.heal import Budget, cosine_rate, fit

    assert cosine_rate(0.1, 0) == pytest.approx(0.1) and cosine_rate(0.1, 0.5) == pytest.approx(0.05)
    assert cosine_rate(0.1, 1) == pytest.approx(0) and cosine_rate(0.1, 3) == pytest.approx(0)
    applied, step = [], torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        applied.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)

    class ThreeSteps(Budget):  # time runs out after 3 of the 8 steps, a third of it per step
        def left(self):
            return len(applied) < 3

        def used(self):
            return len(applied) / 3

    w, checks = torch.nn.Parameter(torch.ones(3)), []
    config = HealConfig(steps=8, lr=0.1, eval_every=100, minutes=None, schedule="cosine")
    (before, best), steps = fit([w], [(torch.zeros(3),)], [(torch.zeros(3),)], lambda x: ((w - x) ** 2).sum(),
                                config, ThreeSteps(None), progress=False,
                                on_check=lambda s, loss: checks.append(s))
    assert applied == pytest.approx([0.1, 0.075, 0.025]) and steps == 3
    assert checks == [3] and best < before  # the steps the budget ended were checked and kept


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
    report = heal(tiny_en, lite, clips[:4], HealConfig(steps=2, eval_every=1, minutes=None),
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
