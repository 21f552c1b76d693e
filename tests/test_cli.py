"""The command line, end to end: success paths and one-line errors (the first compress through
`python -m liteasr`, the rest in this process: see cli_helpers)."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from safetensors.torch import load_file
from cli_helpers import assert_user_error, liteasr
from liteasr.decoding.subtitles import clock


@pytest.fixture(scope="module")
def compressed(random_whisper_dir, noise_clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "lite"
    r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, "--threshold", "0.9:0.95",
                "--rank-multiple", "8", "--output", out, "--save-plan", out.parent / "plan.json",
                "--save-stats", out.parent / "stats.safetensors", subprocess=True)  # the real entry point
    assert r.returncode == 0, r.stderr
    return out


def test_compress_writes_checkpoint_and_reports(compressed):
    config = json.loads((compressed / "config.json").read_text())
    assert config["model_type"] == "lite-whisper"
    card = (compressed / "README.md").read_text()
    assert "liteasr compress" in card and "encoder parameters" in card and "10 clips" in card
    plan = json.loads((compressed.parent / "plan.json").read_text())
    assert len(plan["layers"]) == 12


def test_info_prints_ranks_and_costs(compressed):
    r = liteasr("info", compressed)
    assert r.returncode == 0, r.stderr
    assert "q_proj" in r.stdout and "GFLOPs/30 s: attention" in r.stdout and "encoder params" in r.stdout


def test_stats_and_plans_are_reusable_and_deterministic(compressed, random_whisper_dir, tmp_path):
    parent = compressed.parent
    r = liteasr("compress", random_whisper_dir, "--stats", parent / "stats.safetensors", "--plan", parent / "plan.json",
                "--output", tmp_path / "again")
    assert r.returncode == 0, r.stderr
    a, b = load_file(compressed / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # bit-identical


def test_transcribe_runs(compressed, noise_clips, tmp_path):
    import json

    r = liteasr("transcribe", compressed, noise_clips / "clip0.wav", noise_clips / "clip1.wav")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 2
    r = liteasr("transcribe", compressed, noise_clips / "clip0.wav", "--json", "--beam-size", "2", "--temperature", "0.5")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["temperature"] == 0.5 and out["avg_logprob"] <= 0 and 0 <= out["no_speech_prob"] <= 1
    # a folder: every audio file in it (recursive, sorted), each line named
    import shutil

    files = [tmp_path / "folder" / "b.wav", tmp_path / "folder" / "inner" / "a.wav"]
    for file, clip in zip(files, ("clip0.wav", "clip1.wav")):
        file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(noise_clips / clip, file)
    (tmp_path / "folder" / "._b.wav").write_bytes(b"\x00\x05\x16\x07")  # macOS resource forks: not audio
    (tmp_path / "folder" / ".cache").mkdir()
    shutil.copy(noise_clips / "clip0.wav", tmp_path / "folder" / ".cache" / "c.wav")
    r = liteasr("transcribe", compressed, tmp_path / "folder", "--beam-size", "1")
    assert r.returncode == 0, r.stderr
    assert [line.split("\t")[0] for line in r.stdout.strip().splitlines()] == [str(f) for f in files]
    (tmp_path / "empty").mkdir()
    assert_user_error(liteasr("transcribe", compressed, tmp_path / "empty"), "folder contains no audio files")
    # evaluation of audio without transcripts says so
    assert_user_error(liteasr("eval", compressed, "--data", noise_clips, "--no-latency"), "no clip has a reference text")


@pytest.mark.slow
def test_transcribe_prints_word_timestamps_and_writes_subtitles(tiny_en_dir, speech, tmp_path):
    clip = sorted((speech / "librispeech_other" / "audio").glob("*.flac"))[0]
    subtitles = tmp_path / "subs"
    r = liteasr("transcribe", tiny_en_dir, clip, "--word-timestamps", "--subtitles", "vtt", "--output-dir", subtitles)
    assert r.returncode == 0, r.stderr
    vtt = (subtitles / f"{clip.stem}.vtt").read_text()
    assert f"wrote {subtitles / clip.stem}.vtt" in r.stderr and list(subtitles.iterdir()) == [subtitles / f"{clip.stem}.vtt"]
    rows = [line.split("\t") for line in r.stdout.strip().splitlines()]
    assert len(rows) > 10 and all(len(row) == 3 for row in rows)
    starts = [float(row[0]) for row in rows]
    assert starts == sorted(starts) and all(float(a) <= float(b) for a, b, _ in rows)
    r = liteasr("transcribe", tiny_en_dir, clip, clip, "--word-timestamps", "--json")
    assert r.returncode == 0, r.stderr
    first, second = map(json.loads, r.stdout.strip().splitlines())
    assert first == second  # deterministic
    words = [w for s in first["segments"] for w in s["words"]]
    assert " ".join(w["word"] for w in words) == first["text"]
    assert [[f"{w['start']:.2f}", f"{w['end']:.2f}", w["word"]] for w in words] == rows
    assert all(0 < w["probability"] <= 1 for w in words)
    cues = [cue.splitlines() for cue in vtt.removeprefix("WEBVTT\n\n").strip().split("\n\n")]
    assert vtt.startswith("WEBVTT\n\n") and [text for _, text in cues] == [s["text"] for s in first["segments"]]
    assert [when for when, _ in cues] == [f"{clock(s['start'], '.')} --> {clock(s['end'], '.')}" for s in first["segments"]]
    again = liteasr("transcribe", tiny_en_dir, clip, "--subtitles", "vtt", "--output-dir", subtitles)
    assert_user_error(again, "already exists", "--overwrite")
    assert_user_error(liteasr("transcribe", tiny_en_dir, clip, "--output-dir", subtitles), "is for --subtitles")
    assert (subtitles / f"{clip.stem}.vtt").read_text() == vtt


@pytest.mark.parametrize("case", ["missing_data", "bad_threshold", "exists", "unknown_model", "not_whisper",
                                  "bad_audio", "both_sources", "stats_other_model", "refine_needs_audio",
                                  "bad_decoding"])
def test_user_mistakes_get_one_line(case, random_whisper_dir, noise_clips, compressed, tmp_path, tiny_en_dir):
    if case == "missing_data":
        r = liteasr("compress", random_whisper_dir, "--calibration", tmp_path / "nope", "-o", tmp_path / "o")
        assert_user_error(r, "no such file or folder")
    elif case == "bad_threshold":
        r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, "--threshold", "1.5", "-o", tmp_path / "o")
        assert_user_error(r, "threshold")
    elif case == "exists":
        r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, "-o", compressed)
        assert_user_error(r, "already exists", "--overwrite")
    elif case == "unknown_model":
        assert_user_error(liteasr("info", "whisper-gigantic"), "not a Hub id or a known name")
    elif case == "not_whisper":
        (tmp_path / "bert").mkdir()
        (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
        assert_user_error(liteasr("info", tmp_path / "bert"), "not a Whisper model")
    elif case == "bad_audio":
        (tmp_path / "fake.wav").write_text("this is not audio")
        assert_user_error(liteasr("transcribe", compressed, tmp_path / "fake.wav"), "fake.wav", "cannot read audio")
        assert_user_error(liteasr("transcribe", compressed, tmp_path / "gone.wav"), "gone.wav", "no such file")
    elif case == "both_sources":
        r = liteasr("compress", random_whisper_dir, "-o", tmp_path / "o")
        assert_user_error(r, "exactly one of --calibration")
    elif case == "stats_other_model":
        r = liteasr("compress", tiny_en_dir, "--stats", compressed.parent / "stats.safetensors", "-o", tmp_path / "o")
        assert_user_error(r, "another model")
    elif case == "refine_needs_audio":
        r = liteasr("compress", random_whisper_dir, "--stats", compressed.parent / "stats.safetensors",
                    "--target-params", "0.8", "--allocation", "normalized", "--refine", "heal", "-o", tmp_path / "o")
        assert_user_error(r, "--refine heal needs --calibration audio")
    elif case == "bad_decoding":
        clip = noise_clips / "clip0.wav"
        assert_user_error(liteasr("transcribe", compressed, clip, "--temperature", "0,hot"),
                          "--temperature must be numbers separated by commas")
        assert_user_error(liteasr("transcribe", compressed, clip, "--temperature", "3"), "temperature must be one or more")
        assert_user_error(liteasr("transcribe", compressed, clip, "--no-speech-threshold", "2"),
                          "no-speech threshold must be from 0 to 1")
        assert_user_error(liteasr("transcribe", compressed, clip, "--log-prob-threshold", "1"),
                          "log-prob threshold must be at most 0")
        assert_user_error(liteasr("transcribe", compressed, clip, "--beam-size", "0"), "beam size must be a whole number")
        assert_user_error(liteasr("transcribe", compressed, clip, "--compression-ratio-threshold", "x"),
                          "--compression-ratio-threshold must be a number or off")
    assert not (tmp_path / "o").exists()


def test_export_takes_pytorch_models_only(tmp_path):
    """A CTranslate2 spec or an ONNX export given to export: said as such, not "no such directory"."""
    assert_user_error(liteasr("export", "ctranslate2:tiny.en", "-o", tmp_path / "o"), "runs in CTranslate2",
                      "export takes a PyTorch model")
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    for name in ("encoder_model.onnx", "decoder_model.onnx"):
        (onnx / name).write_bytes(b"")
    assert_user_error(liteasr("export", onnx, "-o", tmp_path / "o"), "runs in ONNX Runtime")
    assert not (tmp_path / "o").exists()


def test_compress_heal_from_several_sources(random_whisper_dir, noise_clips, tmp_path):
    import numpy as np
    import soundfile as sf

    extra = tmp_path / "extra"  # a second calibration source: clips are drawn from both
    extra.mkdir()
    for i in range(3):
        sf.write(extra / f"tone{i}.wav", 0.2 * np.sin(np.arange(24000) * (0.05 + 0.02 * i)).astype(np.float32), 16000)
    r = liteasr("compress", random_whisper_dir, "--calibration", noise_clips, extra,
                "--target-params", "0.8", "--allocation", "normalized", "--rank-multiple", "8",
                "--refine", "heal", "--heal-steps", "2", "--output", tmp_path / "healed")
    assert r.returncode == 0, r.stderr
    assert "healing: held-out loss" in r.stdout
    card = (tmp_path / "healed" / "README.md").read_text()
    assert "healed" in card and "extra" in card


def tones(folder, count: int):
    """`count` distinct 1.25 s tones as WAV files in a new `folder`: audio no calibration source holds."""
    import numpy as np
    import soundfile as sf

    folder.mkdir()
    for i in range(count):
        sf.write(folder / f"tone{i}.wav", 0.2 * np.sin(np.arange(20000) * (0.04 + 0.02 * i)).astype(np.float32), 16000)
    return folder


def test_compress_heals_on_more_voices_than_it_calibrates_on(random_whisper_dir, noise_clips, tmp_path, monkeypatch):
    """--heal-data clips join the calibration clips for healing only, never twice, drawn by --seed."""
    from liteasr import pipeline

    more = tones(tmp_path / "more", 4)
    seen = []
    real = pipeline.heal
    monkeypatch.setattr(pipeline, "heal", lambda loaded, lite, clips, *a: seen.append(clips) or real(loaded, lite, clips, *a))
    args = ["compress", random_whisper_dir, "--calibration", noise_clips, "--calibration-samples", "4",
            "--target-params", "0.8", "--allocation", "normalized", "--rank-multiple", "8", "--heal-steps", "2",
            "--heal-data", noise_clips, more]
    r = liteasr(*args, "--heal-samples", "5", "--output", tmp_path / "healed")
    assert r.returncode == 0, r.stderr
    (clips,) = seen
    paths = [c.path for c in clips]
    assert len(paths) == len(set(paths)) == 9  # 4 calibration clips + 5 others
    assert sum(p.parent == more for p in paths) >= 2  # drawn from both --heal-data sources
    assert "and 5 clips of" in (tmp_path / "healed" / "README.md").read_text()
    r = liteasr(*args[:-3], "--heal-data", more, "--output", tmp_path / "default-count")
    assert r.returncode == 0, r.stderr
    assert len(seen[1]) == 8  # --heal-samples defaults to --calibration-samples (4): all 4 tones
    assert_user_error(liteasr(*args[:-3], "--heal-data", noise_clips, "--calibration-samples", "10", "-o", tmp_path / "bad"),
                      "every clip is already a calibration clip")
    assert_user_error(liteasr(*args, "--refine", "none", "-o", tmp_path / "bad"),
                      "--heal-data applies to healing only (--refine heal, or auto with a target; or --window), "
                      "not to --refine none")
    assert_user_error(liteasr(*args[:-3], "--heal-samples", "2", "-o", tmp_path / "bad"), "--heal-samples needs --heal-data")
    assert not (tmp_path / "bad").exists()


def test_healing_for_the_window_heals_on_more_voices_too(random_whisper_dir, noise_clips, tmp_path, monkeypatch):
    """Without factor healing, --heal-data is still healing audio when the model is healed for its window; the
    factor-healing options still are not."""
    from liteasr import pipeline

    more = tones(tmp_path / "more", 3)
    seen = []
    real = pipeline.adapt_window
    monkeypatch.setattr(pipeline, "adapt_window", lambda loaded, lite, clips, *a: seen.append(clips) or
                        real(loaded, lite, clips, *a))
    args = ["compress", random_whisper_dir, "--calibration", noise_clips, "--calibration-samples", "4",
            "--target-params", "0.8", "--allocation", "normalized", "--rank-multiple", "8", "--refine", "none",
            "--window", "3", "--window-heal-steps", "2", "--heal-data", more]
    r = liteasr(*args, "--output", tmp_path / "window")
    assert r.returncode == 0, r.stderr
    (clips,) = seen
    assert sorted(p.parent == more for p in (c.path for c in clips)) == [False] * 4 + [True] * 3
    assert_user_error(liteasr(*args, "--heal-steps", "2", "-o", tmp_path / "bad"),
                      "--heal-steps applies to healing only (--refine heal, or auto with a target), not to --refine none")
    assert not (tmp_path / "bad").exists()


def test_compress_heal_options_reach_healing(random_whisper_dir, noise_clips, tmp_path):
    """The recipe's knobs (research/healing/refine.md): steps, learning rate, early-stopping cadence, a soup of
    seeds; the variants measured no better are not options (research/healing/variants.py has them)."""
    args = ["compress", random_whisper_dir, "--calibration", noise_clips, "--target-params", "0.8",
            "--allocation", "normalized", "--rank-multiple", "8", "--refine", "heal", "--heal-steps", "3",
            "--heal-lr", "1e-3", "--heal-eval-every", "1", "--heal-patience", "2", "--heal-seeds", "2"]
    r = liteasr(*args, "--output", tmp_path / "healed")
    assert r.returncode == 0, r.stderr
    assert "healing: soup of 2 runs" in r.stdout
    r = liteasr(*args[:-2], "--heal-seeds", "0", "-o", tmp_path / "bad")  # argparse: usage, then the error
    assert r.returncode == 2 and "--heal-seeds: must be positive" in r.stderr.splitlines()[-1], r.stderr
    for gone in (["--heal-kl", "0.1"], ["--heal-metric", "cross"], ["--heal-speeds", "0.9,1.1"], ["--heal-layernorm"],
                 ["--heal-dense"], ["--heal-schedule", "cosine"], ["--heal-block-epochs", "1"]):
        r = liteasr(*args, *gone, "-o", tmp_path / "bad")
        assert r.returncode == 2 and "unrecognized arguments" in r.stderr, (gone, r.stderr)
    assert not (tmp_path / "bad").exists()


def test_compress_help_states_the_healing_defaults():
    """The CLI leaves healing options unset (HealConfig decides) but its help repeats the defaults."""
    from liteasr.cli import build_parser
    from liteasr.cli.compress import HEAL_OPTIONS
    from liteasr.refine import HealConfig

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["compress"]
    helps = {a.dest: a.help for a in sub._actions}
    defaults = HealConfig()
    for option, field in HEAL_OPTIONS.items():
        value = getattr(defaults, field)
        shown = value if isinstance(value, str) else f"{value:g}"
        assert f"default {shown}" in helps[option], (option, helps[option])
    from liteasr.cli.compress import WINDOW_HEAL_OPTIONS
    from liteasr.refine import WINDOW_HEAL

    for option, field in WINDOW_HEAL_OPTIONS.items():
        assert f"default {getattr(WINDOW_HEAL, field):g}" in helps[option], (option, helps[option])
    from liteasr.models.whisper import AUTO_WINDOW

    assert f"default {AUTO_WINDOW.floor:g}" in helps["window_floor"]
    assert f"default {AUTO_WINDOW.margin:g}" in helps["window_margin"]
    from liteasr.pipeline import DEFAULT_TARGET_PARAMS, PAPER_RULE

    assert f"default {DEFAULT_TARGET_PARAMS:g}" in helps["target_params"] and PAPER_RULE in helps["threshold"]


def test_window_heal_seeds_make_a_soup_with_a_budget_per_run():
    from liteasr.cli import build_parser
    from liteasr.cli.compress import config
    from liteasr.refine import WINDOW_HEAL

    def window_heal(*extra):
        return config(build_parser().parse_args(["compress", "tiny.en", "--calibration", "x", "--target-params", "0.7",
                                                 "--window", "auto", *extra])).window_heal

    run = WINDOW_HEAL.minutes / WINDOW_HEAL.seeds  # one run's budget
    assert (window_heal().seeds, window_heal().minutes) == (WINDOW_HEAL.seeds, WINDOW_HEAL.minutes) == (3, 3 * run)
    one = window_heal("--window-heal-seeds", "1")
    assert (one.seeds, one.minutes, one.steps) == (1, run, WINDOW_HEAL.steps)
    assert (window_heal("--window-heal-seeds", "5").minutes, window_heal("--window-heal-seeds", "5").seeds) == (5 * run, 5)
    assert window_heal("--window-heal-seeds", "1", "--window-heal-minutes", "20").minutes == 20
    assert window_heal("--window-heal-minutes", "20").seeds == WINDOW_HEAL.seeds


def test_compress_options_that_cannot_apply_are_errors(random_whisper_dir, noise_clips, tmp_path):
    base = ["compress", random_whisper_dir, "--calibration", noise_clips, "-o", tmp_path / "o"]
    for extra, message in [
        (["--target-params", "0.7", "--threshold", "0.9"], "--threshold chooses ranks without a target"),
        (["--threshold", "0.9", "--allocation", "normalized"], "--allocation applies to ranks allocated for a target"),
        (["--threshold", "0.9", "--probe-clips", "3"], "--probe-clips applies to ranks allocated for a target"),
        (["--threshold", "0.9", "--heal-steps", "5"], "--heal-steps applies to healing only"),
        (["--target-params", "0.7", "--refine", "refit", "--heal-seeds", "3"], "--heal-seeds applies to healing"),
        (["--target-params", "0.7", "--window-margin", "2"], "--window-margin applies with --window only"),
        (["--target-params", "0.7", "--window-heal-seeds", "3"], "--window-heal-seeds applies with --window only"),
        (["--target-params", "0.7", "--window", "5", "--window-floor", "3"], "--window S is the floor itself"),
        (["--target-params", "0.7", "--window", "later"], "--window must be auto or a number"),
    ]:
        assert_user_error(liteasr(*base, *extra), message)
    assert not (tmp_path / "o").exists()


def test_compress_with_no_ranks_chosen_runs_the_default_recipe(random_whisper_dir, noise_clips, compressed, tmp_path):
    """No --target-*, --threshold or --plan: the plan is exactly `--target-params 0.7`'s (measured damage); from
    --stats alone it is exactly the paper's rule's, and the command says which it chose."""
    def plan(*args):
        out = tmp_path / f"plan{len(list(tmp_path.iterdir()))}.json"
        r = liteasr("compress", random_whisper_dir, *args, "--rank-multiple", "8", "--dry-run", "--save-plan", out)
        assert r.returncode == 0, r.stderr
        return r.stdout, json.loads(out.read_text())

    audio = ("--calibration", noise_clips, "--probe-clips", "2")
    said, default = plan(*audio)
    assert "ranks: the default, --target-params 0.7 (measured damage, then healing)" in said
    assert "encoder" in default["method"] and default == plan(*audio, "--target-params", "0.7")[1]
    stats = ("--stats", compressed.parent / "stats.safetensors")
    said, from_stats = plan(*stats)
    assert "ranks: the default from statistics alone, the paper's rule (--threshold 0.99:0.999)" in said
    paper = plan(*stats, "--threshold", "0.99:0.999")
    assert from_stats == paper[1] and "ranks: the default" not in paper[0] and from_stats != default


def test_compress_help_is_grouped():
    r = liteasr("compress", "--help")
    for group in ("target: what to keep", "calibration audio", "refinement", "output", "device"):
        assert f"\n{group}" in r.stdout, group


def speaker_manifest(noise_clips, tmp_path, speakers: list) -> Path:
    """The noise clips in a manifest whose lines name these speakers (cycled; None: no `speaker` field)."""
    rows = []
    for i, path in enumerate(sorted(noise_clips.glob("*.wav"))):
        who = speakers[i % len(speakers)]
        rows.append(json.dumps({"audio": str(path), **({} if who is None else {"speaker": who})}))
    (tmp_path / "set").mkdir(parents=True, exist_ok=True)
    manifest = tmp_path / "set" / "manifest.jsonl"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def test_compress_names_the_calibration_speakers_and_warns_on_few(random_whisper_dir, noise_clips, tmp_path):
    """The summary names the calibration's speaker count (from the manifests); fewer than FEW_SPEAKERS is a
    warning (healing still runs: on 1 and 4 speakers it beat the plain factors, research/few_speakers);
    unstated speakers are said to be unstated."""
    from liteasr.pipeline import FEW_SPEAKERS

    args = ["compress", random_whisper_dir, "--target-params", "0.8", "--allocation", "normalized",
            "--rank-multiple", "8", "--heal-steps", "2"]
    one = speaker_manifest(noise_clips, tmp_path / "one", ["p1"])
    r = liteasr(*args, "--calibration", one, "-o", tmp_path / "one-speaker")
    assert r.returncode == 0, r.stderr
    assert "calibration: 10 clips of" in r.stdout and "1 speaker" in r.stdout and "healing: held-out loss" in r.stdout
    assert "the calibration's manifests name 1 speaker" in r.stderr and "many voices" in r.stderr
    assert "1 speaker" in (tmp_path / "one-speaker" / "README.md").read_text()  # the model card says it too
    many = speaker_manifest(noise_clips, tmp_path / "many", [f"s{i}" for i in range(FEW_SPEAKERS)])
    r = liteasr(*args, "--calibration", many, "--calibration-samples", "10", "-o", tmp_path / "many-speakers")
    assert r.returncode == 0, r.stderr
    assert f"{min(10, FEW_SPEAKERS)} speakers" in r.stdout and "warning" not in r.stderr
    r = liteasr(*args, "--calibration", noise_clips, "--dry-run")  # a folder: no manifest, no speakers
    assert r.returncode == 0 and "speakers unstated" in r.stdout and "warning" not in r.stderr, r.stderr


def test_manifest_speakers_are_scoped_by_their_set(tmp_path, noise_clips):
    from liteasr.data.audio import read_dataset
    from liteasr.pipeline import calibration_speakers

    a = read_dataset(speaker_manifest(noise_clips, tmp_path / "a", ["1", 2]))
    b = read_dataset(speaker_manifest(noise_clips, tmp_path / "b", ["1"]))
    assert {c.speaker.rsplit(":", 1)[1] for c in a.clips} == {"1", "2"}
    assert calibration_speakers(a.clips) == 2 and calibration_speakers(a.clips + b.clips) == 3  # b's "1" is not a's
    assert calibration_speakers(a.clips + [replace(a.clips[0], speaker=None)]) is None
    bad = speaker_manifest(noise_clips, tmp_path / "d", [""])
    assert_user_error(liteasr("calibrate", "tiny.en", "--calibration", bad, "-o", tmp_path / "s.st"),
                      "\"speaker\" must be a name or a number")
