"""Budget-driven rank allocation."""

import json
import os
import subprocess
import sys

import pytest
import torch

from liteasr.allocate import Budget, allocate, candidates, cost
from liteasr.errors import UserError

SHAPES = {"layers.0.fc1": (64, 256), "layers.0.q_proj": (64, 64)}


def spectra(steep_key="layers.0.fc1"):
    steep = torch.tensor([100.0 * 0.5**i for i in range(64)], dtype=torch.float64)
    flat = torch.ones(64, dtype=torch.float64)
    return {k: ((steep if k == steep_key else flat), None) for k in SHAPES}


def params(plan):
    return sum(cost("params", *SHAPES[k], v.rank, 1500) for k, v in plan.layers.items())


def test_candidates_are_multiples_below_break_even_then_dense():
    assert candidates(64, 64, 16) == [16, None]  # 32 * 128 = 64 * 64: no longer smaller
    assert candidates(64, 256, 16) == [16, 32, 48, None]  # 48 * 320 < 64 * 256


@pytest.mark.parametrize("fraction", [0.9, 0.6, 0.4])
def test_budget_is_met_with_multiples(fraction):
    full = sum(cost("params", *s, None, 1500) for s in SHAPES.values())
    plan = allocate(spectra(), SHAPES, Budget("params", fraction), "normalized", multiple=16)
    assert params(plan) <= fraction * full
    assert all(v.rank is None or v.rank % 16 == 0 for v in plan.layers.values())


def test_cheapest_damage_goes_first():
    # fc1's spectrum is steep: truncating it discards almost nothing, so it is cut before the flat q_proj.
    plan = allocate(spectra(), SHAPES, Budget("params", 0.6), "normalized", multiple=16)
    assert plan.layers["layers.0.fc1"].rank is not None and plan.layers["layers.0.q_proj"].rank is None


def test_sensitivity_reweights_layers():
    eig = spectra()
    plain = allocate(eig, SHAPES, Budget("params", 0.6), "normalized", multiple=16)
    weighted = allocate(eig, SHAPES, Budget("params", 0.6), "sensitivity", multiple=16,
                        sensitivity={"layers.0.fc1": 1e20, "layers.0.q_proj": 1e-9})
    assert plain.layers["layers.0.q_proj"].rank is None  # fc1 alone can pay for the budget
    assert weighted.layers["layers.0.q_proj"].rank == 16  # but a sensitive fc1 makes q_proj pay first


def test_impossible_targets_and_bad_options():
    with pytest.raises(UserError, match="cannot be met"):
        allocate(spectra(), SHAPES, Budget("params", 0.05), "normalized", multiple=16)
    with pytest.raises(UserError):
        Budget("params", 0)
    with pytest.raises(UserError):
        Budget("params", 1.5)
    with pytest.raises(UserError, match="needs calibration audio"):
        allocate(spectra(), SHAPES, Budget("params", 0.9), "sensitivity")


def test_flop_budget_counts_fixed_costs():
    fixed = 10**12
    with pytest.raises(UserError, match="cannot be met"):
        allocate(spectra(), SHAPES, Budget("flops", 0.5), "normalized", multiple=16, fixed_flops=fixed)


def liteasr(*args):
    return subprocess.run([sys.executable, "-m", "liteasr", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=600)


def test_cli_target_params(random_whisper_dir, noise_clips, tmp_path):
    r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, "--target-params", "0.7",
                "--rank-multiple", "8", "-o", tmp_path / "t", "--save-plan", tmp_path / "plan.json")
    assert r.returncode == 0, r.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    total = sum(cost("params", v["in_features"], v["out_features"], v["rank"], 1500) for v in plan["layers"].values())
    full = sum(cost("params", v["in_features"], v["out_features"], None, 1500) for v in plan["layers"].values())
    assert total <= 0.7 * full and "sensitivity" in plan["method"]
    r = liteasr("compress", random_whisper_dir, "--stats", tmp_path / "nope.st", "--target-params", "0.7",
                "--plan", tmp_path / "plan.json", "-o", tmp_path / "u")
    assert r.returncode == 2 and "cannot be combined" in r.stderr


def test_dry_run_prints_the_plan_and_writes_nothing(random_whisper_dir, noise_clips, tmp_path):
    r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, "--target-params", "0.8",
                "--allocation", "normalized", "--rank-multiple", "8", "--dry-run", "--save-plan", tmp_path / "p.json")
    assert r.returncode == 0, r.stderr
    assert "layers.0.fc1" in r.stdout and "linear parameters kept" in r.stdout
    assert (tmp_path / "p.json").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]
