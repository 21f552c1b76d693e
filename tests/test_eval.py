"""Evaluation, sweep and calibration/evaluation hygiene."""

import json
import shutil

import pytest

from liteasr.data.audio import read_dataset
from liteasr.errors import UserError
from liteasr.evaluation.report import evaluate_models, print_table
from liteasr.evaluation import sweep
from liteasr.evaluation.sweep import check_disjoint, pareto_front, run_sweep


def manifest_of(folder, tmp_path, name):
    """A manifest with made-up transcripts over the noise clips (WER is meaningless, the schema is not)."""
    d = tmp_path / name
    d.mkdir()
    lines = []
    for p in sorted(folder.glob("*.wav")):
        shutil.copy(p, d / p.name)
        lines.append(json.dumps({"audio": p.name, "text": "a tone and some noise"}))
    (d / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return d / "manifest.jsonl"


def test_pareto_front():
    assert pareto_front([(1, 5), (2, 4), (3, 6), (2, 4.5), (0.5, 9)]) == [True, True, False, False, True]


def test_disjointness_by_path_and_by_audio_hash(noise_clips, tmp_path):
    clips = read_dataset(noise_clips).clips
    with pytest.raises(UserError, match="both the calibration and the evaluation"):
        check_disjoint(clips[:3], clips[2:5])
    shutil.copy(clips[0].path, tmp_path / "renamed.wav")
    with pytest.raises(UserError, match="same audio"):
        check_disjoint(clips[:3], read_dataset(tmp_path).clips)
    check_disjoint(clips[:3], clips[3:])


def test_eval_json_schema(random_whisper_dir, noise_clips, tmp_path):
    m = manifest_of(noise_clips, tmp_path, "noiseset")
    [r] = evaluate_models([str(random_whisper_dir)], [str(m)], batch_size=4, progress=False)
    assert set(r) >= {"model", "encoder_params", "encoder_gflops", "datasets", "average_wer", "encoder_ms"}
    ds = r["datasets"]["noiseset"]  # named after the manifest's folder
    assert set(ds) >= {"wer", "n", "words", "audio_s", "rtfx", "substitutions", "deletions", "insertions"}
    assert ds["n"] == 10 and ds["words"] == 50 and ds["audio_s"] == pytest.approx(19.0)
    assert ds["rtfx"] > 0 and r["average_wer"] == ds["wer"]
    assert set(r["encoder_ms"]) == {"batch_1", "batch_8"}
    json.dumps(r)


def test_sweep_on_random_model(random_whisper_dir, noise_clips, tmp_path, monkeypatch):
    clips = sorted(noise_clips.glob("*.wav"))
    cal, ev = tmp_path / "cal", tmp_path / "ev"
    cal.mkdir()
    for p in clips[:6]:
        shutil.copy(p, cal / p.name)
    ev_manifest = manifest_of(noise_clips, tmp_path, "ev_all")
    # Overlap is refused before any work.
    with pytest.raises(UserError, match="same audio"):
        run_sweep(str(random_whisper_dir), str(cal), [str(ev_manifest)], ["0.9"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    ev.mkdir()
    lines = []
    for p in clips[6:]:
        shutil.copy(p, ev / p.name)
        lines.append(json.dumps({"audio": p.name, "text": "noise"}))
    (ev / "manifest.jsonl").write_text("\n".join(lines))
    measured = []
    real_measure = sweep.measure_damage
    monkeypatch.setattr(sweep, "measure_damage", lambda *a, **k: measured.append(a[3]) or real_measure(*a, **k))
    results = run_sweep(str(random_whisper_dir), str(cal), [str(ev)], ["0.8", "0.95:0.99"], tmp_path / "out",
                        batch_size=4, progress=False, targets=[0.8, 0.6], allocations=["encoder", "normalized"])
    assert [r["label"] for r in results] == ["base", "threshold 0.8", "threshold 0.95:0.99", "encoder params 0.8",
                                             "encoder params 0.6", "normalized params 0.8", "normalized params 0.6"]
    assert measured == ["encoder", "normalized"]  # one damage measurement per model, shared by the budgets
    name = next(iter(results[0]["datasets"]))
    assert "delta_wer" not in results[0]["datasets"][name]  # the first model is the reference
    for r in results[1:]:
        d = r["datasets"][name]["delta_wer"]
        assert d["low"] <= d["delta"] <= d["high"]
        assert d["delta"] == pytest.approx(r["datasets"][name]["wer"] - results[0]["datasets"][name]["wer"])
    assert results[1]["encoder_params"] < results[0]["encoder_params"]
    # (the planner also counts a bias for dense k_proj, which has none: a fraction of a percent)
    assert results[4]["encoder_linear_params"] < 0.605 * results[0]["encoder_linear_params"]
    for name in ("sweep.csv", "sweep.json", "sweep.png", "stats.safetensors"):
        assert (tmp_path / "out" / name).is_file()
    assert (tmp_path / "out" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    rows = (tmp_path / "out" / "sweep.csv").read_text().splitlines()
    assert len(rows) == 8 and rows[0].startswith("label,model,encoder_params")


@pytest.mark.slow
def test_eval_real_tiny_en_on_real_speech(speech, tmp_path):
    [r] = evaluate_models(["tiny.en"], [str(speech / "ljspeech")], samples=12, progress=False, latency=False)
    ds = r["datasets"]["ljspeech"]
    assert ds["n"] == 12 and ds["words"] > 100
    assert ds["wer"] < 15  # tiny.en reads clean audiobook speech well
    assert r["encoder_params"] == 8_208_384


def test_eval_pools_every_set_into_one_corpus(random_whisper_dir, noise_clips, tmp_path, capsys):
    """With several sets, every model gets a corpus WER over all their utterances, and every model after
    the first a paired ΔWER over them (the same model twice: exactly zero)."""
    sets = [str(manifest_of(noise_clips, tmp_path, name)) for name in ("first_set", "second_set")]
    results = evaluate_models([str(random_whisper_dir)] * 2, sets, batch_size=4, progress=False, latency=False)
    for r in results:
        per_set = r["datasets"].values()
        errors = sum(d["wer"] * d["words"] for d in per_set) / 100
        assert r["all_sets"]["n"] == sum(d["n"] for d in per_set) == 20
        assert r["all_sets"]["wer"] == pytest.approx(100 * errors / sum(d["words"] for d in per_set))
    assert "delta_wer" not in results[0]["all_sets"]
    assert results[1]["all_sets"]["delta_wer"]["delta"] == 0 == results[1]["all_sets"]["delta_wer"]["high"]
    print_table(results)
    assert "all 20 utterances as one corpus" in capsys.readouterr().out
