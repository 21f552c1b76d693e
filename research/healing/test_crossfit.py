"""Cross-fitted evaluation: research/healing/refine_eval.py --crossfit scores each utterance only by checkpoints
that never heard its speaker (or the utterance), read from their provenance (audio hashes) and the
manifest's `speaker` field; speaker_split.py makes the folds, heal_on.py heals on them."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tests.cli_helpers import liteasr
from safetensors.torch import load_file

from liteasr.data.audio import audio_hash, read_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refine_eval import cross_fitted  # noqa: E402


def evaluation_set(folder: Path, speakers: list[str | None]) -> Path:
    """One short clip per entry (distinct audio, so distinct hashes), in a manifest with these speakers."""
    folder.mkdir()
    rows = []
    for i, speaker in enumerate(speakers):
        sf.write(folder / f"{i}.flac", np.sin(np.arange(1600) * (i + 1) / 10).astype(np.float32), 16000)
        rows.append({"audio": f"{i}.flac", "text": "x", **({"speaker": speaker} if speaker else {})})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def healed_on(work: Path, name: str, clips: list[Path]):
    (work / f"{name}-0.6").mkdir(parents=True)
    hashes = [audio_hash(c) for c in clips] + ["f" * 64]  # calibration clips of other sets
    (work / f"{name}-0.6" / "liteasr.json").write_text(json.dumps({"calibration_hashes": hashes}))


def test_crossfit_scores_each_utterance_with_the_checkpoints_that_never_heard_its_speaker(tmp_path):
    data = evaluation_set(tmp_path / "set", ["s1", "s1", "s2", "s2", "s3"])
    ds = read_dataset(data)
    work = tmp_path / "work"
    healed_on(work, "A", [data / "0.flac"])  # heard s1 through one clip: s1's other clip is excluded too
    healed_on(work, "B", [data / "2.flac"])  # heard s2
    errors = {("A 0.6", ds.name): (0, [(1, 10), (2, 10), (3, 10), (4, 10), (5, 10)]),
              ("B 0.6", ds.name): (0, [(6, 10), (7, 10), (8, 10), (9, 10), (0, 10)])}
    out = cross_fitted("A+B", [ds], [data], errors, work, "0.6")
    # s1 by B alone, s2 by A alone, s3 (heard by neither) by the mean of both
    assert out["A+B 0.6", ds.name][1] == [(6, 10), (7, 10), (3, 10), (4, 10), (2.5, 10)]
    assert out["A+B 0.6", ds.name][0] == pytest.approx(100 * 22.5 / 50)
    with pytest.raises(SystemExit, match="every checkpoint heard the speaker of"):
        cross_fitted("A", [ds], [data], errors, work, "0.6")
    # adaptation to known voices: only the utterance itself is excluded
    out = cross_fitted("A+B", [ds], [data], errors, work, "0.6", unheard="utterance")
    assert out["A+B 0.6", ds.name][1] == [(6, 10), (4.5, 10), (3, 10), (6.5, 10), (2.5, 10)]


def test_crossfit_refuses_clips_without_a_speaker(tmp_path):
    data = evaluation_set(tmp_path / "set", ["s1", None])
    ds = read_dataset(data)
    healed_on(tmp_path / "work", "A", [data / "0.flac"])
    errors = {("A 0.6", ds.name): (0, [(1, 10), (2, 10)])}
    with pytest.raises(SystemExit, match="needs a `speaker`"):
        cross_fitted("A", [ds], [data], errors, tmp_path / "work", "0.6")


def test_speaker_split_by_speaker_or_by_utterance(tmp_path):
    data = evaluation_set(tmp_path / "set", ["s1"] * 4 + ["s2"] * 2 + ["s3"] * 2)
    script = Path(__file__).resolve().parent / "speaker_split.py"

    def parts(by: str) -> list[list[dict]]:
        out = tmp_path / by
        done = subprocess.run([sys.executable, str(script), str(data), str(out), "--by", by],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return [[json.loads(line) for line in (out / f"set_{p}" / "manifest.jsonl").read_text().splitlines()]
                for p in ("calib", "heldout")]

    calib, held = parts("speaker")
    assert {r["speaker"] for r in calib}.isdisjoint({r["speaker"] for r in held})
    assert len(calib) + len(held) == 8
    calib, held = parts("utterance")
    assert {r["audio"] for r in calib}.isdisjoint({r["audio"] for r in held})
    assert sorted(r["speaker"] for r in calib) == ["s1", "s1", "s2", "s3"]  # half of each speaker's utterances
    assert all(Path(r["audio"]).is_file() for r in calib + held)  # the original audio, nothing copied


def test_heal_on_heals_a_start_on_named_audio_and_records_it(random_whisper_dir, noise_clips, tmp_path):
    start = tmp_path / "start"
    r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, "--threshold", "0.9:0.95",
                "--rank-multiple", "8", "--refine", "none", "-o", start)
    assert r.returncode == 0, r.stderr
    script = Path(__file__).resolve().parent / "heal_on.py"

    def heal_on(*args):
        return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                              timeout=600)

    done = heal_on(start, "-o", tmp_path / "healed", "--base", random_whisper_dir, "--heal-on", noise_clips,
                   "--steps", 3)
    assert done.returncode == 0, done.stderr
    before, after = load_file(start / "model.safetensors"), load_file(tmp_path / "healed" / "model.safetensors")
    assert any(k.endswith("weight1") and not torch.equal(before[k], after[k]) for k in before)
    heard = set(json.loads((tmp_path / "healed" / "liteasr.json").read_text())["calibration_hashes"])
    assert {audio_hash(c) for c in read_dataset(noise_clips).clips} <= heard  # what --crossfit reads
    for bad, why in (((random_whisper_dir,), "is not a liteasr checkpoint"), ((start, "--heal-on", tmp_path / "none"),
                     "no such file or folder")):
        args = [bad[0], "-o", tmp_path / "bad", "--base", random_whisper_dir, "--heal-on", noise_clips, *bad[1:]]
        failed = heal_on(*args)
        assert failed.returncode != 0 and "Traceback" not in failed.stderr and why in failed.stderr
        assert not (tmp_path / "bad").exists()
