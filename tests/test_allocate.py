"""Budget-driven rank allocation."""

import json

import pytest
import torch

from liteasr.models import whisper
from liteasr.planning.allocate import Budget, allocate, cost
from liteasr.data.audio import read_dataset
from liteasr.planning.damage import TruncationProbe, candidates, damage_table, discarded, interpolate
from liteasr.factorize.lowrank import factorize
from liteasr.models.generation import transcript_mask
from liteasr.errors import UserError
from cli_helpers import liteasr

SHAPES = {"layers.0.fc1": (64, 256), "layers.0.q_proj": (64, 64)}


def spectra(steep_key="layers.0.fc1"):
    steep = torch.tensor([100.0 * 0.5**i for i in range(64)], dtype=torch.float64)
    flat = torch.ones(64, dtype=torch.float64)
    return {k: ((steep if k == steep_key else flat), None) for k in SHAPES}


def table(eig, damage="normalized"):
    return damage_table(damage, eig, {k: candidates(*s, 16) for k, s in SHAPES.items()})


def plan_for(fraction, harm=None, eig=None, kind="params", fixed=0):
    eig = eig or spectra()
    return allocate(harm or table(eig), SHAPES, Budget(kind, fraction), eig, "test", fixed_flops=fixed)


def params(plan):
    return sum(cost("params", *SHAPES[k], v.rank, 1500) for k, v in plan.layers.items())


FULL = sum(cost("params", *s, None, 1500) for s in SHAPES.values())


def test_candidates_are_multiples_below_break_even_then_dense():
    assert candidates(64, 64, 16) == [16, None]  # 32 * 128 = 64 * 64: no longer smaller
    assert candidates(64, 256, 16) == [16, 32, 48, None]  # 48 * 320 < 64 * 256


@pytest.mark.parametrize("fraction", [0.9, 0.6, 0.4])
def test_budget_is_met_with_multiples(fraction):
    plan = plan_for(fraction)
    assert params(plan) <= fraction * FULL
    assert all(v.rank is None or v.rank % 16 == 0 for v in plan.layers.values())


def test_cheapest_damage_goes_first():
    # fc1's spectrum is steep: truncating it discards almost nothing, so it is cut before the flat q_proj.
    plan = plan_for(0.6)
    assert plan.layers["layers.0.fc1"].rank is not None and plan.layers["layers.0.q_proj"].rank is None
    flipped = plan_for(0.92, eig=spectra("layers.0.q_proj"))  # q_proj alone can pay for this budget
    assert flipped.layers["layers.0.q_proj"].rank == 16 and flipped.layers["layers.0.fc1"].rank is None


def test_moves_may_skip_ranks():
    # The first step below dense saves little of the wide fc1 and costs most of its damage; a one-step
    # greedy would cut q_proj first. Per parameter saved, going straight to rank 16 is cheapest.
    harm = {"layers.0.fc1": {16: 1.0, 32: 0.9, 48: 0.85, None: 0.0}, "layers.0.q_proj": {16: 0.5, None: 0.0}}
    plan = plan_for(0.6, harm)
    assert plan.layers["layers.0.fc1"].rank == 16 and plan.layers["layers.0.q_proj"].rank is None


def test_slack_left_by_a_large_move_is_spent():
    harm = {"layers.0.fc1": {16: 1.0, 32: 0.9, 48: 0.85, None: 0.0}, "layers.0.q_proj": {16: 0.5, None: 0.0}}
    plan = plan_for(0.85, harm)  # rank 16 overshoots the budget by far; rank 32 still fits
    assert plan.layers["layers.0.fc1"].rank == 32 and params(plan) <= 0.85 * FULL


def test_impossible_targets_and_bad_options():
    with pytest.raises(UserError, match="cannot be met"):
        plan_for(0.05)
    with pytest.raises(UserError):
        Budget("params", 0)
    with pytest.raises(UserError):
        Budget("params", 1.5)
    with pytest.raises(UserError, match="needs calibration audio"):
        table(spectra(), "decoder")
    with pytest.raises(UserError, match="damage model must be one of"):
        table(spectra(), "magic")


def test_flop_budget_counts_fixed_costs():
    with pytest.raises(UserError, match="cannot be met"):
        plan_for(0.5, kind="flops", fixed=10**12)


def test_interpolation_is_exact_at_probes_zero_when_dense_and_monotone():
    values = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.125], dtype=torch.float64)
    options = [1, 2, 3, 4, 5, 6, None]
    # a noisy probe (rank 2 measured below rank 4) must not make less rank look better
    got = interpolate(values, {2: 0.01, 4: 0.03, 6: 0.001}, options)
    assert got[None] == 0.0 and got[6] == pytest.approx(0.001) and got[4] == pytest.approx(0.03)
    ordered = [got[r] for r in [None, 6, 5, 4, 3, 2, 1]]
    assert all(a <= b for a, b in zip(ordered, ordered[1:]))
    one = interpolate(values, {4: 0.03}, options)  # the sensitivity model: one line through the origin
    for r in (1, 3, 6):
        assert one[r] == pytest.approx(0.03 * discarded(values, r, True) / discarded(values, 4, True))
    beyond = interpolate(values, {4: 0.03, 6: 0.001}, options)
    assert beyond[2] > beyond[4] == pytest.approx(0.03)  # below the smallest probe: extrapolated, still growing


def test_damage_probes_take_every_calibration_language_in_turn():
    from liteasr.data.audio import Clip
    from liteasr.factorize.compress import probe_selection

    # drawn sources come one after another: the first 8 clips would all be English
    clips = [Clip(f"en{i}.flac") for i in range(6)] + [Clip(f"pl{i}.flac", language="pl") for i in range(3)]
    assert [str(c.path) for c in probe_selection(clips, 8)] == \
        ["en0.flac", "pl0.flac", "en1.flac", "pl1.flac", "en2.flac", "pl2.flac", "en3.flac", "en4.flac"]
    assert probe_selection(clips[:6], 4) == clips[:4]  # one language: its first clips, as before
    assert probe_selection([], 8) == []


def test_transcript_mask_stops_after_first_end_of_text():
    eos = 9
    ids = torch.tensor([[1, 2, 5, 9, 9, 9], [1, 2, 5, 6, 7, 9]])
    mask = transcript_mask(ids, eos)
    assert mask.int().tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


@pytest.fixture(scope="module")
def tiny_probe(tiny_en, speech):
    from liteasr.data.audio import load_audio

    clips = read_dataset(speech / "ljspeech").clips[:2]
    return TruncationProbe(tiny_en, [load_audio(c.path) for c in clips], "decoder")


def test_decoder_damage_on_real_speech(tiny_en, tiny_probe, speech):
    """KL of the decoder's predictions on its own transcripts: zero for the dense layer itself, small for a
    mild truncation, large for a severe one, and larger for v_proj than for a wide MLP layer at the same
    rank."""
    from liteasr.calibration.calibrate import calibrate
    from liteasr.data.audio import sample

    key = "layers.1.fc1"
    dense = whisper.encoder_linears(tiny_probe.model)[key]
    assert tiny_probe.damage(key, dense) == pytest.approx(0.0, abs=1e-9)
    entry = tiny_probe.batches[0]
    assert entry["mask"].sum() > 10  # real transcripts were decoded
    # prompt and alignment are right: teacher-forced, the dense model predicts its own greedy tokens
    assert torch.equal(entry["logp"].argmax(-1), entry["ids"][:, 1:][entry["mask"]])
    stats = calibrate(tiny_en, sample(read_dataset(speech / "vctk_p239").clips, 8, seed=0),
                      progress=False)
    _, vectors = stats.layers[key].spectrum()
    mild = tiny_probe.damage(key, factorize(dense, stats.layers[key].mean, vectors, 304))
    severe = tiny_probe.damage(key, factorize(dense, stats.layers[key].mean, vectors, 16))
    assert 0 < mild < 0.05 < severe


def test_cli_target_params(random_whisper_dir, noise_clips, tmp_path):
    r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, "--target-params", "0.7",
                "--rank-multiple", "8", "-o", tmp_path / "t", "--save-plan", tmp_path / "plan.json",
                "--heal-steps", "2")  # healing's length is not what this test is about
    assert r.returncode == 0, r.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    total = sum(cost("params", v["in_features"], v["out_features"], v["rank"], 1500) for v in plan["layers"].values())
    full = sum(cost("params", v["in_features"], v["out_features"], None, 1500) for v in plan["layers"].values())
    assert total <= 0.7 * full and "encoder" in plan["method"]  # the default damage model
    assert "healing: held-out loss" in r.stdout  # --refine auto heals with a target
    r = liteasr("compress", random_whisper_dir, "--stats", tmp_path / "nope.st", "--target-params", "0.7",
                "--plan", tmp_path / "plan.json", "-o", tmp_path / "u")
    assert r.returncode == 2 and "cannot be combined" in r.stderr


def test_dry_run_prints_the_plan_and_writes_nothing(random_whisper_dir, noise_clips, tmp_path):
    r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, "--target-params", "0.8",
                "--allocation", "normalized", "--rank-multiple", "8", "--dry-run", "--save-plan", tmp_path / "p.json")
    assert r.returncode == 0, r.stderr
    assert "layers.0.fc1" in r.stdout and "linear parameters kept" in r.stdout
    assert (tmp_path / "p.json").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]


def test_cli_spells_the_damage_models_like_the_library():
    from liteasr import cli
    from liteasr.planning import damage

    assert cli.DAMAGE_MODELS == damage.DAMAGE_MODELS and cli.DEFAULT_DAMAGE == damage.DEFAULT_DAMAGE
