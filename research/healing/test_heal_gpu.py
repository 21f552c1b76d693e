"""research/healing/heal_gpu.py: a start and its healing audio packed for a GPU machine (the audio over a call's
size split off), healed there, and unpacked here into a checkpoint that records every clip it heard."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from tests.cli_helpers import liteasr
from safetensors.torch import load_file

from liteasr.data.audio import audio_hash, read_dataset

SCRIPT = Path(__file__).resolve().parent / "heal_gpu.py"


def heal_gpu(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=600)


def test_split_bundle_heals_and_unpacks_without_growing_the_bundle(tiny_en_dir, noise_clips, tmp_path):
    # tiny_en_dir: the converted tiny.en in the cache, the teacher `pack` and `unpack` read as "tiny.en"
    work = tmp_path / "work"
    start = work / "pca-0.9"  # TAG-SIZE, as unpack names what it writes
    r = liteasr("compress", "tiny.en", "--calibration", noise_clips, "--threshold", "0.9:0.95", "--refine", "none",
                "-o", start)
    assert r.returncode == 0, r.stderr
    bundle = tmp_path / "bundle"
    # a split below the models' own size moves every clip to BUNDLE-extra (and no further)
    packed = heal_gpu("pack", start, bundle, "--speech", noise_clips, "--split-mib", 0)
    assert packed.returncode == 0, packed.stderr
    extra = Path(f"{bundle}-extra")
    assert not list((bundle / "calib" / "audio").iterdir()) and len(list((extra / "calib" / "audio").iterdir())) == 10

    device = tmp_path / "device"  # what the GPU machine holds: its own copy of BUNDLE
    shutil.copytree(bundle, device)
    healed = heal_gpu("run", device, tmp_path / "out", "--extra", extra, "--variants", "19", "--clips", 4, "--steps", 2)
    assert healed.returncode == 0, healed.stderr
    unpacked = heal_gpu("unpack", tmp_path / "out", work, "--bundle", bundle, "--prefix", "gpu")
    assert unpacked.returncode == 0, unpacked.stderr

    assert not list((bundle / "calib" / "audio").iterdir())  # still small enough for the next call to carry
    before, after = load_file(start / "model.safetensors"), load_file(work / "gpu19-0.9" / "model.safetensors")
    assert any(k.endswith("weight1") and not torch.equal(before[k], after[k]) for k in before)
    heard = set(json.loads((work / "gpu19-0.9" / "liteasr.json").read_text())["calibration_hashes"])
    assert {audio_hash(c) for c in read_dataset(noise_clips).clips} <= heard
