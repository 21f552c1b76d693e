"""The adaptive encoder window: windows sized to the audio on every runtime, healing for them, the policy
in checkpoints and exports (issue 37)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from cli_helpers import assert_user_error, liteasr
from liteasr import runtime
from liteasr.data.audio import load_audio, read_dataset, sample
from liteasr.decoding.transcribe import WINDOW_END_THRESHOLD, DecodingOptions, transcribe
from liteasr.errors import UserError
from liteasr.models import whisper
from liteasr.models.whisper import PADDED, WindowPolicy
from liteasr.refine import HealConfig, heal_window
from test_runtime import lite_onnx, random_lite_dir  # noqa: F401  (a random lite model and its fp32 export)

SHORT = WindowPolicy(floor=2.0, margin=1.0, multiple=1.0)


def clips_of(speech, name, n, seed=0):
    return [load_audio(c) for c in sample(read_dataset(speech / name).clips, n, seed)]


def test_policy_sizes_windows_to_the_audio():
    p = WindowPolicy(floor=5.0, margin=1.0, multiple=1.0)
    assert p.frames(2 * 16000) == 500  # 3 s of audio + margin, under the 5 s floor
    assert p.frames(int(7.5 * 16000)) == 900  # 8.5 s rounded up to 9 s: 900 mel frames
    assert p.frames(40 * 16000) == 3000 and PADDED.frames(16000) == 3000  # never over 30 s; 30 s padding
    assert WindowPolicy(floor=1.0, margin=0.0, multiple=0.5).frames(int(1.2 * 16000)) == 150
    assert WindowPolicy.from_config({"liteasr_window": p.to_dict()}) == p
    assert WindowPolicy.from_config({}) == PADDED
    for bad in (dict(floor=0), dict(floor=31), dict(margin=-1), dict(multiple=0)):
        with pytest.raises(UserError):
            WindowPolicy(**bad)


def test_short_window_features_are_the_padded_windows_first_frames(tiny_en, speech):
    audios = clips_of(speech, "librispeech_other", 3)
    padded = tiny_en.features(audios)
    for i, audio in enumerate(audios):
        frames = SHORT.frames(len(audio))
        assert frames < 3000
        short = tiny_en.features([audio], frames)
        assert short.shape[-1] == frames
        assert torch.equal(short[0], padded[i, :, :frames])


def test_a_window_as_long_as_30_s_decodes_as_today(tiny_en, speech):
    clips = clips_of(speech, "ljspeech", 6)
    audio = np.concatenate(clips)[: 30 * 16000 - 800]  # 29.95 s: its window is the full 30 s
    assert SHORT.frames(len(audio)) == 3000
    assert transcribe(tiny_en, [audio], progress=False, warmup=False,
                      options=DecodingOptions(window=SHORT)).texts == \
        transcribe(tiny_en, [audio], progress=False, warmup=False).texts


def test_mixed_lengths_in_one_batch_get_the_text_each_gets_alone(tiny_en, speech):
    audios = clips_of(speech, "librispeech_other", 5, seed=3)
    assert len({SHORT.frames(len(a)) for a in audios}) > 1  # several window lengths in one batch
    options = DecodingOptions(window=SHORT)
    together = transcribe(tiny_en, audios, batch_size=5, progress=False, warmup=False, options=options).texts
    alone = [transcribe(tiny_en, [a], progress=False, warmup=False, options=options).texts[0] for a in audios]
    assert together == alone
    # evaluation batches a dataset's clips by window length (from the headers): the same text per clip
    from liteasr.data.audio import Dataset
    from liteasr.evaluation.evaluate import evaluate_dataset

    clips = sample(read_dataset(speech / "librispeech_other").clips, 5, seed=3)
    scored = evaluate_dataset(tiny_en, Dataset("five", clips), batch_size=2, progress=False, options=options)
    assert [t["hypothesis"] for t in scored.transcripts] == alone
    # the default stays Whisper's padded window for a model whose checkpoint records no policy
    padded = transcribe(tiny_en, audios, batch_size=5, progress=False, warmup=False).texts
    assert transcribe(tiny_en, audios, batch_size=5, progress=False, warmup=False,
                      options=DecodingOptions(window=30)).texts == padded


@pytest.mark.slow
def test_a_transcript_that_ends_unsurely_on_a_short_window_is_decoded_again_padded(tiny_en, speech):
    from test_decoding import LOOPING  # clips dense tiny.en loops on, on a 2 s window it was never healed for

    looping = [load_audio(speech / "librispeech_other" / "audio" / f"{name}.flac") for name in LOOPING]
    normal = clips_of(speech, "librispeech_other", 4, seed=3)
    audios = normal + looping
    padded = transcribe(tiny_en, audios, batch_size=8, progress=False, warmup=False, options=DecodingOptions(window=30))
    unguarded = transcribe(tiny_en, audios, batch_size=8, progress=False, warmup=False,
                           options=DecodingOptions(window=2, window_end_threshold=None))
    assert not any(unguarded.padded_again)
    loops = unguarded.hypotheses[len(normal):]
    assert all(h.compression_ratio > 2.4 for h in loops) and any(h.end_logprob is None for h in loops)
    guarded = transcribe(tiny_en, audios, batch_size=8, progress=False, warmup=False, options=DecodingOptions(window=2))
    for i, (h, again) in enumerate(zip(unguarded.hypotheses, guarded.padded_again)):
        assert again == (h.end_logprob is None or h.end_logprob < np.log(WINDOW_END_THRESHOLD)
                         or h.compression_ratio > 2.4)
        # a clip decoded again gets its padded text; the others keep the short window's
        assert guarded.texts[i] == (padded.texts[i] if again else unguarded.texts[i])
    assert all(guarded.padded_again[len(normal):]) and not all(guarded.padded_again)
    # a threshold of 1 sends every clip back: the padded window's text throughout
    assert transcribe(tiny_en, normal, progress=False, warmup=False,
                      options=DecodingOptions(window=2, window_end_threshold=1.0)).texts == padded.texts[:len(normal)]


def test_batches_hold_clips_of_one_window_length():
    from liteasr.decoding.transcribe import batches_by_window

    seconds = [2.5, 9.3, 2.2, 9.4, 2.9, 5.0, 2.1, 9.2]  # windows (audio + 1 s, rounded up): 4 11 4 11 4 6 4 11
    samples = [int(s * 16000) for s in seconds]
    short = DecodingOptions(window=SHORT)
    batches = batches_by_window(samples, short, batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(8))  # every clip once
    assert all(len(b) <= 3 and len({SHORT.frames(samples[i]) for i in b}) == 1 for b in batches)
    assert batches == [[0, 2, 4], [6], [5], [1, 3, 7]]  # shortest windows first, input order within one
    assert batches_by_window(samples, short, 3, items=[3, 0, 1]) == [[0], [3, 1]]
    # padded windows: consecutive blocks, as before
    assert batches_by_window(samples, DecodingOptions(window=WindowPolicy()), 3) == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_onnx_export_encodes_short_windows_as_pytorch_does(random_lite_dir, lite_onnx, speech):  # noqa: F811
    torch_model, onnx_model = whisper.load(str(random_lite_dir)), runtime.load(str(lite_onnx))
    feats = torch.randn(2, 80, 700, generator=torch.Generator().manual_seed(0))
    reference = whisper.encoder_output(torch_model.model, feats).numpy()
    assert reference.shape[1] == 350
    assert np.abs(onnx_model.encode(feats) - reference).max() < 1e-4
    audios = clips_of(speech, "ljspeech", 3)
    options = DecodingOptions(window=SHORT)
    assert transcribe(onnx_model, audios, progress=False, warmup=False, options=options).texts == \
        transcribe(torch_model, audios, progress=False, warmup=False, options=options).texts


def test_ctranslate2_refuses_a_short_window(tiny_en_dir, speech):
    audio = speech / "ljspeech" / json.loads((speech / "ljspeech" / "manifest.jsonl").open().readline())["audio"]
    assert_user_error(liteasr("transcribe", "ctranslate2:tiny.en", audio, "--window", "5"), "30 s windows only")
    assert_user_error(liteasr("transcribe", tiny_en_dir, audio, "--window", "soon"), "--window")
    assert_user_error(liteasr("transcribe", tiny_en_dir, audio, "--window", "40"), "--window")
    assert_user_error(liteasr("transcribe", tiny_en_dir, audio, "--window", "auto"), "not healed for short windows")


def test_healing_for_the_window_never_ends_above_its_start(tiny_en, speech):
    import copy

    student = copy.deepcopy(tiny_en.model)
    teacher = [p.clone() for p in tiny_en.model.parameters()]
    clips = sample(read_dataset(speech / "librispeech_calib").clips, 10, 0)
    report = heal_window(tiny_en, student, clips, WindowPolicy(floor=3.0), HealConfig(steps=4, eval_every=2,
                                                                                      batch_size=2),
                         progress=False)
    before, after = report.e2e_loss
    assert report.steps >= 2 and after <= before
    # the teacher never moves: only the student's encoder projections trained
    assert all(torch.equal(a, b) for a, b in zip(tiny_en.model.parameters(), teacher))
    assert not all(torch.equal(a, b) for a, b in zip(student.parameters(), teacher))


def test_healing_for_the_window_with_seeds_is_the_mean_of_its_runs(tiny_en, speech):
    import copy

    clips = sample(read_dataset(speech / "librispeech_calib").clips, 4, 0)  # 3 train, 1 held out
    config = HealConfig(steps=2, eval_every=2, batch_size=2, minutes=None)
    runs = []
    for seed in (0, 1):
        student = copy.deepcopy(tiny_en.model)
        heal_window(tiny_en, student, clips, WindowPolicy(floor=3.0), dataclasses.replace(config, seed=seed),
                    progress=False)
        runs.append(student)
    soup = copy.deepcopy(tiny_en.model)
    report = heal_window(tiny_en, soup, clips, WindowPolicy(floor=3.0), dataclasses.replace(config, seeds=2),
                         progress=False)
    assert len(report.members) == 2
    moved = 0
    for (name, p), a, b in zip(soup.named_parameters(), runs[0].parameters(), runs[1].parameters()):
        torch.testing.assert_close(p, (a + b) / 2, rtol=1e-5, atol=1e-6, msg=name)
        moved += not torch.equal(a, b)
    assert moved  # the two seeds healed differently, so the mean is not either run


def test_compress_records_the_window_and_every_runtime_honours_it(speech, tmp_path):
    out = tmp_path / "lite"
    r = liteasr("compress", "tiny.en", "--calibration", speech / "librispeech_calib", "--calibration-samples", 4,
                "--target-params", 0.8, "--allocation", "normalized", "--heal-steps", 2, "--window", "auto",
                "--window-floor", 3, "--window-heal-steps", 2, "--window-heal-seeds", 2, "--output", out)
    assert r.returncode == 0, r.stderr
    card = (out / "README.md").read_text()
    assert "healed for windows of the audio + 1 s, at least 3 s" in card and "in a soup of 2 runs" in card
    said = r.stdout + r.stderr
    assert "2 runs averaged (--window-heal-seeds), within 60 min" in said  # 30 min a run
    assert said.index("run 1 of 2 (seed 0)") < said.index("run 2 of 2 (seed 1)")
    loaded = whisper.load(str(out))
    assert loaded.window == WindowPolicy(floor=3.0, margin=1.0, multiple=1.0)
    audios = clips_of(speech, "ljspeech", 2)
    own = transcribe(loaded, audios, progress=False, warmup=False).texts
    assert own == transcribe(loaded, audios, progress=False, warmup=False,
                             options=DecodingOptions(window=loaded.window)).texts
    exported = tmp_path / "onnx"
    assert liteasr("export", out, "--output", exported).returncode == 0
    onnx_model = runtime.load(str(exported))
    assert onnx_model.window == loaded.window and onnx_model.variable_window
    assert transcribe(onnx_model, audios, progress=False, warmup=False).texts == own
    for option in ("--window-floor", "--window-heal-steps"):
        assert_user_error(liteasr("compress", "tiny.en", "--calibration", speech / "librispeech_calib",
                                  option, 3, "--output", tmp_path / "x"), option)
