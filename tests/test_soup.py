"""benchmarks/soup.py: the weighted mean of healed checkpoints, refused when they cannot share a start."""

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "soup.py"
RANKS = {"low_rank_config": [{"q_proj": 16}]}


def checkpoint(path: Path, weight1: torch.Tensor, norm: torch.Tensor, hashes=("a", "b"), ranks=RANKS) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps(ranks))
    (path / "liteasr.json").write_text(json.dumps({"method": "healed", "command": "x", "calibration_hashes": list(hashes)}))
    save_file({"enc.q_proj.weight1": weight1, "enc.q_proj.bias": weight1[0].clone(), "enc.norm.weight": norm},
              str(path / "model.safetensors"))
    return path


def soup(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_soup_weights_each_checkpoint_by_its_runs_and_refuses_other_starts(tmp_path):
    norm = torch.randn(4)
    a = checkpoint(tmp_path / "a", torch.ones(2, 4), norm)
    b = checkpoint(tmp_path / "b", torch.full((2, 4), 5.0), norm)
    done = soup(f"{a}=3", f"{b}=1", "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    mean = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert torch.allclose(mean["enc.q_proj.weight1"], torch.full((2, 4), 2.0))  # (3 * 1 + 1 * 5) / 4
    assert torch.allclose(mean["enc.q_proj.bias"], torch.full((4,), 2.0))
    assert torch.equal(mean["enc.norm.weight"], norm)
    assert "soup of" in json.loads((tmp_path / "out" / "liteasr.json").read_text())["method"]

    others = [checkpoint(tmp_path / "norm", torch.ones(2, 4), norm + 1),  # a tensor healing never changes
              checkpoint(tmp_path / "clips", torch.ones(2, 4), norm, hashes=("c",)),
              checkpoint(tmp_path / "ranks", torch.ones(2, 4), norm, ranks={"low_rank_config": [{"q_proj": 32}]})]
    for other, why in zip(others, ("enc.norm.weight", "other clips", "other ranks")):
        done = soup(a, other, "-o", tmp_path / f"out-{other.name}")
        assert done.returncode != 0 and why in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / f"out-{other.name}").exists()
