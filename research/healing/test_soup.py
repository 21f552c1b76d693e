"""research/healing/soup.py: the weighted mean of healed checkpoints, refused when they cannot share a start."""

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

SCRIPT = Path(__file__).resolve().parent / "soup.py"
RANKS = {"low_rank_config": [{"q_proj": 16}]}
LAYER = "model.encoder.layers.0."


def checkpoint(path: Path, weight1: torch.Tensor, conv: torch.Tensor, hashes=("a", "b"), ranks=RANKS) -> Path:
    """Healing moves a factored projection (weight1, bias) and a dense one (--heal-dense); never the conv."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps(ranks))
    (path / "liteasr.json").write_text(json.dumps({"method": "healed", "command": "x", "calibration_hashes": list(hashes)}))
    save_file({LAYER + "self_attn.q_proj.weight1": weight1, LAYER + "self_attn.q_proj.bias": weight1[0].clone(),
               LAYER + "self_attn.out_proj.weight": 2 * weight1, "model.encoder.conv1.weight": conv},
              str(path / "model.safetensors"))
    return path


def soup(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_soup_weights_each_checkpoint_by_its_runs_and_refuses_other_starts(tmp_path):
    conv = torch.randn(4)
    a = checkpoint(tmp_path / "a", torch.ones(2, 4), conv)
    b = checkpoint(tmp_path / "b", torch.full((2, 4), 5.0), conv)
    done = soup(f"{a}=3", f"{b}=1", "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    mean = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert torch.allclose(mean[LAYER + "self_attn.q_proj.weight1"], torch.full((2, 4), 2.0))  # (3 * 1 + 1 * 5) / 4
    assert torch.allclose(mean[LAYER + "self_attn.q_proj.bias"], torch.full((4,), 2.0))
    assert torch.allclose(mean[LAYER + "self_attn.out_proj.weight"], torch.full((2, 4), 4.0))
    assert torch.equal(mean["model.encoder.conv1.weight"], conv)
    assert "soup of" in json.loads((tmp_path / "out" / "liteasr.json").read_text())["method"]

    others = [checkpoint(tmp_path / "conv", torch.ones(2, 4), conv + 1),  # a tensor healing never changes
              checkpoint(tmp_path / "clips", torch.ones(2, 4), conv, hashes=("c",)),
              checkpoint(tmp_path / "ranks", torch.ones(2, 4), conv, ranks={"low_rank_config": [{"q_proj": 32}]})]
    for other, why in zip(others, ("conv1.weight", "other clips", "other ranks")):
        done = soup(a, other, "-o", tmp_path / f"out-{other.name}")
        assert done.returncode != 0 and why in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / f"out-{other.name}").exists()
