"""research/allocation/shift_plan.py: rank moved between attention and MLP projections of a saved plan."""

import subprocess
import sys
from pathlib import Path

from liteasr.planning.plan import LayerRank, RankPlan

SCRIPT = Path(__file__).resolve().parent / "shift_plan.py"


def shift(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_shift_moves_qk_and_fc_ranks_and_keeps_dense_layers_dense(tmp_path):
    ranks = {"layers.0.q_proj": 48, "layers.0.k_proj": 64, "layers.0.v_proj": None, "layers.0.fc1": 96,
             "layers.1.q_proj": 64, "layers.1.fc1": 128, "layers.1.fc2": None}
    plan = RankPlan({k: LayerRank(r, 384, 1536 if k.endswith("fc1") else 384, 0.99 if r else 1.0, "test")
                     for k, r in ranks.items()}, "sensitivity allocation")
    plan.save(tmp_path / "plan.json")
    done = shift(tmp_path / "plan.json", "--qk", -32, "--fc", 16, "--fc-layers", 1, "-o", tmp_path / "out.json")
    assert done.returncode == 0, done.stderr
    out = RankPlan.load(tmp_path / "out.json")
    assert out.ranks() == {"layers.0.q_proj": 32, "layers.0.k_proj": 32, "layers.0.v_proj": None,  # floor 32
                           "layers.0.fc1": 96, "layers.1.q_proj": 32, "layers.1.fc1": 144, "layers.1.fc2": None}
    assert out.method.startswith("sensitivity allocation, q/k ranks -32, fc ranks +16")
    assert f"{out.kept_fraction():.2%}" in done.stdout and f"{plan.kept_fraction():.2%}" in done.stdout
    missing = shift(tmp_path / "nope.json", "-o", tmp_path / "bad.json")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr and "not a rank plan" in missing.stderr
    assert not (tmp_path / "bad.json").exists()
