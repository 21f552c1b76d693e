"""torch.distributed: 2 gloo processes under torchrun give the one-process statistics (bit-identical),
rank plan and transcripts; --shard + merge-stats; a missing peer is a clear error, not a hang.

All two-process commands run in one torchrun launch (start-up dominates on a loaded 2-core box)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from liteasr.cli import main
from liteasr.demo import shared_speech
from liteasr.distributed import balance, blocks, parse_shard
from liteasr.errors import UserError
from liteasr.calibration.stats import CovarianceStats

HERE = Path(__file__).parent
SRC = HERE.parent / "src"


def _env(**extra):
    return dict(os.environ, PYTHONPATH=str(SRC.resolve()), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
                TOKENIZERS_PARALLELISM="false", **extra)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(commands: list[list], folder: Path, nproc: int = 2):
    (folder / "commands.json").write_text(json.dumps([[str(a) for a in argv] for argv in commands]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-addr",
           "127.0.0.1", "--master-port", str(_free_port()), str(HERE / "torchrun_commands.py"),
           str(folder / "commands.json")]
    # own session: torchrun's signals to its workers must not reach pytest
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600, start_new_session=True)
    assert out.returncode == 0, out.stderr[-3000:]


def same_stats(a: CovarianceStats, b: CovarianceStats) -> bool:
    return a.layers.keys() == b.layers.keys() and all(
        a.layers[k].count == b.layers[k].count and torch.equal(a.layers[k].sum, b.layers[k].sum)
        and torch.equal(a.layers[k].outer, b.layers[k].outer) for k in a.layers)


def eval_sets(folder: Path, n: int = 2) -> list[Path]:
    """The first `n` clips of librispeech_other as a manifest, a save_to_disk folder and a parquet file;
    the datasets also hold an empty reference and an "ignore time segment in scoring" row, which the
    leaderboard's hygiene drops."""
    import datasets

    speech = shared_speech()
    source = speech / "librispeech_other" / "manifest.jsonl"
    rows = [json.loads(line) for line in source.read_text().splitlines()[:n]]
    (folder / "manifest").mkdir()
    manifest = folder / "manifest" / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"audio": str(source.parent / r["audio"]), "text": r["text"]}) + "\n"
                                for r in rows))
    audio = [{"bytes": (source.parent / r["audio"]).read_bytes(), "path": r["audio"]} for r in rows]
    texts = [r["text"] for r in rows]
    table = datasets.Dataset.from_dict({"speech": audio + audio[:2],
                                        "sentence": texts + ["", "ignore time segment in scoring"]})
    table = table.cast_column("speech", datasets.Audio(decode=False))  # as the Hub stores audio
    table.save_to_disk(str(folder / "saved"))
    table.to_parquet(str(folder / "set.parquet"))
    return [manifest, folder / "saved", folder / "set.parquet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, random_whisper_dir, noise_clips, tiny_en_dir):
    """One process in this process, two under torchrun: calibrate, compress --dry-run, eval."""
    folder = tmp_path_factory.mktemp("distributed")
    common = ["--calibration", noise_clips, "--packing", "pad", "--batch-size", "2", "--shard-windows", "3",
              "--device", "cpu"]
    plan = ["compress", random_whisper_dir, *common, "--target-params", "0.6", "--probe-clips", "3", "--dry-run"]
    commands = {"calibrate": lambda tag: ["calibrate", random_whisper_dir, *common, "-o", folder / f"{tag}.st"],
                "compress": lambda tag: [*plan, "--save-plan", folder / f"{tag}.plan.json"]}
    if shared_speech() is not None:
        data = eval_sets(folder)
        commands["eval"] = lambda tag: ["eval", tiny_en_dir, "--data", *data[:2], "--audio-column", "speech",
                                        "--text-column", "sentence", "--batch-size", "1", "--no-latency",
                                        "--device", "cpu", "--json", folder / f"{tag}.eval.json"]
        commands["sweep"] = lambda tag: ["sweep", random_whisper_dir, *common[:-4], "--device", "cpu", "--eval", data[0],
                                         "--thresholds", "0.9:0.9", "0.99:0.99", "--output", folder / f"{tag}.sweep"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process (and no thread oversubscription on a busy box)
    try:
        for make in commands.values():
            assert main([str(a) for a in make("one")]) == 0
    finally:
        torch.set_num_threads(threads)
    torchrun([make("two") for make in commands.values()], folder)
    return folder


def test_shards_and_balance():
    assert [len(b) for b in blocks(range(10), 4)] == [4, 4, 2]
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(UserError):
            parse_shard(bad)
    costs = [4, 4, 3, 3, 2, 2, 1, 1]  # early layers cost more: the costly tasks are spread
    owners = balance(costs, 2)
    assert sorted(owners[0] + owners[1]) == list(range(8))
    assert sum(costs[i] for i in owners[0]) == sum(costs[i] for i in owners[1]) == 10


def test_calibrate_bit_identical_under_torchrun(runs):
    one, two = CovarianceStats.load(runs / "one.st"), CovarianceStats.load(runs / "two.st")
    assert one.meta["windows"] == two.meta["windows"] == 10  # 4 shards of 3 windows: 2 rounds of 2 processes
    assert same_stats(one, two)


def test_damage_probes_split_give_the_same_plan(runs):
    one, two = (json.loads((runs / f"{t}.plan.json").read_text()) for t in ("one", "two"))
    assert one == two
    assert any(layer.get("rank") for layer in one["layers"].values())  # the budget did factor something


def test_shard_files_merge_to_the_whole(runs, random_whisper_dir, noise_clips, tmp_path):
    """Machines without a shared network: `calibrate --shard I/N` anywhere, then `merge-stats`."""
    common = ["calibrate", str(random_whisper_dir), "--calibration", str(noise_clips), "--packing", "pad",
              "--batch-size", "2", "--shard-windows", "3", "--device", "cpu"]
    for i in range(2):
        assert main([*common, "--shard", f"{i}/2", "-o", str(tmp_path / f"s{i}.st")]) == 0
    whole = CovarianceStats.load(runs / "one.st")
    part = CovarianceStats.load(tmp_path / "s0.st")
    assert part.meta["windows"] == 6 and part.meta["shard"] == "0/2"
    assert main(["merge-stats", str(tmp_path / "s1.st"), str(tmp_path / "s0.st"), "-o", str(tmp_path / "m.st")]) == 0
    merged = CovarianceStats.load(tmp_path / "m.st")
    assert merged.meta["windows"] == 10 and merged.meta["clips"] == whole.meta["clips"] and "shard" not in merged.meta
    for k, s in whole.layers.items():
        assert merged.layers[k].count == s.count
        # float64 sums added in another order: equal to its rounding, relative to the matrix's scale (an
        # entry near zero from cancellation can differ by more than 1e-12 of itself)
        for merged_sum, whole_sum in ((merged.layers[k].outer, s.outer), (merged.layers[k].sum, s.sum)):
            assert (merged_sum - whole_sum).abs().max() <= 1e-12 * whole_sum.abs().max()
    # a shard twice, a shard with a whole calibration, a missing shard: refused
    for files in (["s0.st", "s0.st"], ["s0.st", str(runs / "one.st")], ["s0.st", str(runs / "two.st")]):
        assert main(["merge-stats", *[str(tmp_path / f) for f in files], "-o", str(tmp_path / "x.st")]) == 2
    assert not (tmp_path / "x.st").exists()


def test_eval_same_transcripts_under_torchrun_and_from_datasets(runs):
    """Two processes: the one-process WER and transcripts. A save_to_disk copy of the manifest: the
    same WER and transcripts, the two hygiene rows dropped."""
    if not (runs / "one.eval.json").exists():
        pytest.skip("../shared/data/speech not present")
    one, two = (json.loads((runs / f"{t}.eval.json").read_text())[0]["datasets"] for t in ("one", "two"))
    assert list(one) == ["manifest", "saved"]
    for name in one:
        assert one[name]["n"] == 2
        assert {k: v for k, v in one[name].items() if k != "rtfx"} == {k: v for k, v in two[name].items() if k != "rtfx"}
        assert one[name]["wer"] == one["manifest"]["wer"] and one[name]["words"] == one["manifest"]["words"]
    assert one["manifest"]["wer"] < 30  # real transcripts of real speech


def test_sweep_under_torchrun_gives_the_one_process_points(runs):
    """`sweep` under torchrun: the same rank plans, sizes and WERs as one process; rank 0 alone writes."""
    if not (runs / "one.sweep").exists():
        pytest.skip("../shared/data/speech not present")
    one, two = (json.loads((runs / f"{t}.sweep" / "sweep.json").read_text()) for t in ("one", "two"))
    assert len(one) == len(two) == 3  # dense + two thresholds
    drop = ("model", "rtfx", "encoder_ms")  # the output folder's path and the timings differ
    for a, b in zip(one, two):
        assert {k: v for k, v in a.items() if k not in drop and k != "datasets"} == \
               {k: v for k, v in b.items() if k not in drop and k != "datasets"}
        for name in a["datasets"]:
            assert {k: v for k, v in a["datasets"][name].items() if k not in drop} == \
                   {k: v for k, v in b["datasets"][name].items() if k not in drop}
    assert sorted(p.name for p in (runs / "two.sweep").iterdir()) == sorted(p.name for p in (runs / "one.sweep").iterdir())


def test_parquet_and_saved_datasets_read_as_the_manifest(runs):
    """Same clips (text and decoded audio) from the manifest, save_to_disk and parquet; hygiene rows dropped;
    a wrong column is a one-line error."""
    import numpy as np

    from liteasr.data.audio import load_audio, read_dataset

    if not (runs / "set.parquet").exists():
        pytest.skip("../shared/data/speech not present")
    manifest = read_dataset(runs / "manifest")
    for source in (runs / "saved", runs / "set.parquet", str(runs / "*.parquet")):
        ds = read_dataset(source, "speech", "sentence")
        assert [c.text for c in ds.clips] == [c.text for c in manifest.clips]
        assert all(np.array_equal(load_audio(a), load_audio(b)) for a, b in zip(ds.clips, manifest.clips))
    with pytest.raises(UserError, match="no audio column 'audio'"):
        read_dataset(runs / "saved")
    assert main(["eval", str(runs), "--data", str(runs / "set.parquet"), "--audio-column", "nope"]) == 2


def test_missing_peer_is_a_clear_error(random_whisper_dir, noise_clips, tmp_path):
    """Rank 0 of 2 with no rank 1: one line after the timeout, no output file, no hang."""
    env = _env(RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               LITEASR_DIST_TIMEOUT="3")
    out = subprocess.run([sys.executable, "-m", "liteasr", "calibrate", str(random_whisper_dir), "--calibration",
                          str(noise_clips), "--device", "cpu", "-o", str(tmp_path / "s.st")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "timed out" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "s.st").exists()


def test_streamed_rows_read_as_stored_rows(runs, monkeypatch):
    """The Hub path (streamed rows, kept encoded) on a local stream: the same clips as the saved set."""
    import datasets

    from liteasr.data.audio import audio_hash, read_dataset
    from liteasr.data import hf

    if not (runs / "saved").exists():
        pytest.skip("../shared/data/speech not present")
    table = datasets.load_from_disk(str(runs / "saved"))
    monkeypatch.setattr(hf, "_open", lambda source: (table.to_iterable_dataset(), "streamed"))
    streamed = read_dataset("hf:org/name:test", "speech", "sentence")
    saved = read_dataset(runs / "saved", "speech", "sentence")
    assert [c.text for c in streamed.clips] == [c.text for c in saved.clips]
    assert [audio_hash(c) for c in streamed.clips] == [audio_hash(c) for c in saved.clips]
    with pytest.raises(UserError, match="no audio column"):
        read_dataset("hf:org/name:test")
