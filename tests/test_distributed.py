"""torch.distributed: 1 vs 2 gloo processes (torchrun) give the same statistics, rank plans and
transcripts; --shard + merge-stats; a missing peer is a clear error, not a hang."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from liteasr.cli import main
from liteasr.distributed import balance, blocks, parse_shard
from liteasr.errors import UserError
from liteasr.stats import CovarianceStats

SRC = os.path.join(os.path.dirname(__file__), "..", "src")


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(SRC), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, nproc=2, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-addr",
           "127.0.0.1", "--master-port", str(_free_port()), "-m", "liteasr", *map(str, args)]
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def same_stats(a: CovarianceStats, b: CovarianceStats) -> bool:
    return a.layers.keys() == b.layers.keys() and all(
        a.layers[k].count == b.layers[k].count and torch.equal(a.layers[k].sum, b.layers[k].sum)
        and torch.equal(a.layers[k].outer, b.layers[k].outer) for k in a.layers)


def test_shards_and_balance():
    assert [len(b) for b in blocks(range(10), 4)] == [4, 4, 2]
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(UserError):
            parse_shard(bad)
    # early layers cost more: the costly tasks are spread, every task is owned once
    owners = balance([4, 4, 3, 3, 2, 2, 1, 1], 2)
    assert sorted(owners[0] + owners[1]) == list(range(8))
    assert sum([4, 4, 3, 3, 2, 2, 1, 1][i] for i in owners[0]) == 10


def test_calibrate_and_compress_identical_under_torchrun(random_whisper_dir, noise_clips, tmp_path):
    """Statistics bit-identical for 1 and 2 processes; the measured-damage rank plan identical."""
    common = ["--calibration", noise_clips, "--packing", "pad", "--batch-size", "2", "--shard-windows", "3",
              "--device", "cpu"]
    assert main(["calibrate", str(random_whisper_dir), *map(str, common), "-o", str(tmp_path / "one.st")]) == 0
    torchrun("calibrate", random_whisper_dir, *common, "-o", tmp_path / "two.st")
    one, two = CovarianceStats.load(tmp_path / "one.st"), CovarianceStats.load(tmp_path / "two.st")
    assert one.meta["windows"] == two.meta["windows"] == 10
    assert same_stats(one, two)

    # machines without a shared network: shards anywhere, then merge-stats
    for i in range(2):
        assert main(["calibrate", str(random_whisper_dir), *map(str, common), "--shard", f"{i}/2",
                     "-o", str(tmp_path / f"s{i}.st")]) == 0
    part = CovarianceStats.load(tmp_path / "s0.st")
    assert 0 < part.meta["windows"] < 10 and not same_stats(part, one)
    assert main(["merge-stats", str(tmp_path / "s1.st"), str(tmp_path / "s0.st"), "-o", str(tmp_path / "m.st")]) == 0
    merged = CovarianceStats.load(tmp_path / "m.st")
    assert merged.meta["windows"] == 10 and merged.meta["clips"] == one.meta["clips"]
    for k, s in one.layers.items():
        assert merged.layers[k].count == s.count
        assert torch.allclose(merged.layers[k].outer, s.outer, rtol=1e-12, atol=0)
    assert main(["merge-stats", str(tmp_path / "s0.st"), str(tmp_path / "s0.st"), "-o", str(tmp_path / "x.st")]) == 2
    assert main(["merge-stats", str(tmp_path / "s0.st"), str(tmp_path / "one.st"), "-o", str(tmp_path / "x.st")]) == 2

    # damage probes split over processes: the same rank plan
    plan = ["compress", random_whisper_dir, *common, "--target-params", "0.6", "--probe-clips", "3", "--dry-run",
            "--rank-multiple", "16"]
    assert main([*map(str, plan), "--save-plan", str(tmp_path / "one.json")]) == 0
    torchrun(*plan, "--save-plan", tmp_path / "two.json")
    assert json.loads((tmp_path / "one.json").read_text()) == json.loads((tmp_path / "two.json").read_text())


def test_missing_peer_is_a_clear_error(random_whisper_dir, noise_clips, tmp_path):
    """Rank 0 of 2 with no rank 1: a one-line error after the timeout, no output file."""
    env = _env(RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               LITEASR_DIST_TIMEOUT="3")
    out = subprocess.run([sys.executable, "-m", "liteasr", "calibrate", str(random_whisper_dir), "--calibration",
                          str(noise_clips), "--device", "cpu", "-o", str(tmp_path / "s.st")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "timed out" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "s.st").exists()
