"""Beam search, temperature fallback and their guards (decoding/search.py), on real speech and real weights."""

import numpy as np
import pytest
import torch

from liteasr import runtime
from liteasr.data.audio import load_audio, read_dataset
from liteasr.decoding import search
from liteasr.decoding.transcribe import DecodingOptions, transcribe
from liteasr.errors import UserError
from liteasr.models import generation
from liteasr.models.sources import offline_copy

# librispeech_other clips that dense tiny.en, on a 2 s encoder window it was never healed for, repeats to its
# token budget (found by decoding 40 clips greedily with --window 2).
LOOPING = ("1998-15444-0007", "3331-159605-0001", "533-1066-0003")


@pytest.fixture(scope="module")
def clips(speech):
    return [load_audio(c.path) for c in read_dataset(speech / "librispeech_other").clips[:6]]


def run(model, audios, **options):
    return transcribe(model, audios, progress=False, warmup=False, options=DecodingOptions(**options))


def test_one_beam_at_temperature_zero_is_the_greedy_loop(tiny_en, clips):
    encoded = tiny_en.encode(tiny_en.features(clips))
    prompt = generation.build_prompt(tiny_en.generation_config, [None] * len(clips))
    eos = generation.eos_id(tiny_en.model)
    greedy = [[t for t in row if t != eos] for row in generation.greedy_ids(tiny_en.model, encoded, prompt, 120).tolist()]
    result = run(tiny_en, clips)
    assert [h.tokens for h in result.hypotheses] == greedy and all(greedy)
    assert result.attempts == [1] * len(clips)


def test_beam_search_is_deterministic_and_each_clip_decodes_as_alone(tiny_en, clips):
    options = DecodingOptions.like_faster_whisper()
    batch = transcribe(tiny_en, clips, progress=False, warmup=False, options=options)
    again = transcribe(tiny_en, clips, progress=False, warmup=False, options=options)
    alone = [transcribe(tiny_en, [a], progress=False, warmup=False, options=options).texts[0] for a in clips[:3]]
    assert batch.texts == again.texts and batch.texts[:3] == alone
    # the beams' best is at least as likely as the greedy transcript, per token, on every clip
    greedy = run(tiny_en, clips)
    for b, g in zip(batch.hypotheses, greedy.hypotheses):
        assert b.sum_logprob / max(1, len(b.tokens)) >= g.sum_logprob / max(1, len(g.tokens)) - 1e-4
    assert all(-1.0 < h.avg_logprob < 0 and 0.5 < h.compression_ratio < 2.4 and 0 <= h.no_speech_prob < 0.6
               for h in batch.hypotheses)


def test_each_hypothesis_knows_how_likely_its_end_was(tiny_en, clips):
    for options in (DecodingOptions(), DecodingOptions.like_faster_whisper()):
        result = transcribe(tiny_en, clips, progress=False, warmup=False, options=options)
        assert all(h.end_logprob is not None and h.sum_logprob <= h.end_logprob <= 0 for h in result.hypotheses)
    cut = run(tiny_en, clips[:1])  # the budget runs out before the end: no end-of-text
    encoded = tiny_en.encode(tiny_en.features(clips[:1]))
    stepper = tiny_en.start_decoder(encoded, generation.build_prompt(tiny_en.generation_config, [None]), 0)
    from liteasr.decoding.transcribe import search_tokens

    [[short]] = search.sample(stepper, search_tokens(tiny_en), 3, 1, 0.0)
    assert short.tokens == cut.hypotheses[0].tokens[:3] and short.end_logprob is None


def test_sampling_is_seeded_and_independent_of_batch_mates(tiny_en, clips):
    options = dict(temperature=(0.8,), best_of=2, seed=3)
    batch = run(tiny_en, clips[:3], **options)
    assert batch.texts == run(tiny_en, clips[:3], **options).texts
    assert run(tiny_en, clips[1:2], **options).texts[0] == batch.texts[1]
    assert all(h.temperature == 0.8 for h in batch.hypotheses)


@pytest.mark.slow
def test_a_loop_is_caught_and_decoded_again(tiny_en, speech):
    audios = [load_audio(speech / "librispeech_other" / "audio" / f"{name}.flac") for name in LOOPING]
    words = {c.path.stem: len(c.text.split()) for c in read_dataset(speech / "librispeech_other").clips}
    # the short window's own guard off: this is about the temperature fallback's
    looping = run(tiny_en, audios, window=2, window_end_threshold=None)
    assert all(h.compression_ratio > 2.4 for h in looping.hypotheses)  # greedy loops on every one
    guarded = run(tiny_en, audios, window=2, temperature=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), window_end_threshold=None,
                  compression_ratio_threshold=2.4, log_prob_threshold=-1.0)  # the defaults, greedy at 0
    assert all(a > 1 for a in guarded.attempts)
    for name, text, h in zip(LOOPING, guarded.texts, guarded.hypotheses):
        assert h.temperature > 0 and h.compression_ratio <= 2.4 and len(text.split()) <= 3 * words[name]


def test_silence_is_skipped_only_when_its_tokens_are_unlikely(tiny_en):
    """faster-whisper's rule: a likely no-speech window is silence only if its text is also unlikely. On
    digital silence tiny.en says "you" with a high no-speech probability but a likely token, and keeps it
    (as faster-whisper does); a stricter log-probability threshold makes it silence, not a fallback."""
    silence = [np.zeros(3 * 16000, np.float32)]
    kept = transcribe(tiny_en, silence, progress=False, warmup=False, options=DecodingOptions.like_faster_whisper())
    h = kept.hypotheses[0]
    assert h.no_speech_prob > 0.6 and h.avg_logprob > -1.0 and kept.texts[0]
    strict = DecodingOptions.like_faster_whisper(log_prob_threshold=h.avg_logprob / 2)
    skipped = transcribe(tiny_en, silence, progress=False, warmup=False, options=strict)
    assert skipped.texts == [""] and skipped.attempts == [1]


@pytest.mark.slow
def test_pytorch_and_onnx_fp32_give_the_same_text_with_the_same_options(tiny_en, clips, tmp_path):
    pytest.importorskip("onnxruntime")
    from liteasr.runtime.export import export

    onnx = runtime.load(str(export("tiny.en", tmp_path / "onnx", progress=False)))
    for options in (DecodingOptions.like_faster_whisper(), DecodingOptions(temperature=(0.6,), best_of=3)):
        ours = transcribe(tiny_en, clips[:4], progress=False, warmup=False, options=options)
        theirs = transcribe(onnx, clips[:4], progress=False, warmup=False, options=options)
        assert ours.texts == theirs.texts
        for a, b in zip(ours.hypotheses, theirs.hypotheses):
            assert abs(a.avg_logprob - b.avg_logprob) < 1e-3 and abs(a.no_speech_prob - b.no_speech_prob) < 1e-3


@pytest.mark.slow
def test_default_decoding_matches_faster_whisper(tiny_en, clips):
    """faster-whisper's own transcribe (its defaults: beam 5, fallback, no timestamps asked) on the same clips
    padded to one window (it pads in the log-mel domain), against liteasr's like_faster_whisper() on PyTorch
    and on CTranslate2."""
    faster_whisper = pytest.importorskip("faster_whisper")
    model = faster_whisper.WhisperModel(str(offline_copy("tiny.en")), device="cpu", compute_type="float32",
                                        cpu_threads=torch.get_num_threads())
    theirs = []
    for audio in clips:
        window = np.zeros(30 * 16000, np.float32)
        window[: len(audio)] = audio
        segments, _ = model.transcribe(window, language="en", without_timestamps=True, vad_filter=False)
        theirs.append("".join(s.text for s in segments).strip())
    options = DecodingOptions.like_faster_whisper()
    assert transcribe(tiny_en, clips, progress=False, warmup=False, options=options).texts == theirs
    ct2 = runtime.load("ctranslate2:tiny.en:float32")
    assert transcribe(ct2, clips, progress=False, warmup=False, options=options).texts == theirs


@pytest.mark.parametrize("changes, message", [
    ({"beam_size": 0}, "beam size must be a whole number of at least 1"),
    ({"best_of": 1.5}, "best-of must be a whole number"),
    ({"temperature": ()}, "temperature must be one or more numbers"),
    ({"temperature": (0.0, -0.2)}, "temperature must be one or more numbers"),
    ({"compression_ratio_threshold": 0}, "compression ratio threshold must be above 0"),
    ({"log_prob_threshold": 0.5}, "log-prob threshold must be at most 0"),
    ({"no_speech_threshold": 1.5}, "no-speech threshold must be from 0 to 1"),
    ({"window_end_threshold": -0.1}, "window end threshold must be from 0 to 1"),
])
def test_bad_options_are_user_errors(tiny_en, changes, message):
    with pytest.raises(UserError, match=message):
        transcribe(tiny_en, [np.zeros(16000, np.float32)], progress=False, warmup=False,
                   options=DecodingOptions(**changes))


def test_the_command_lines_window_end_default_is_the_librarys():
    from liteasr.cli import common
    from liteasr.decoding.transcribe import WINDOW_END_THRESHOLD

    assert common.WINDOW_END_THRESHOLD == WINDOW_END_THRESHOLD  # spelled out there so parsing skips torch


def test_compression_ratio_flags_repetition():
    assert search.compression_ratio("the cat sat on the mat") < 1.5
    assert search.compression_ratio("the cat sat on the mat " * 20) > 2.4
    assert search.compression_ratio("") == 0.0
