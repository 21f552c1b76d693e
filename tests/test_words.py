"""Word timestamps (decoding/words.py) on real speech and real weights: against the text they time, across
30 s windows, against CTranslate2's own alignment (C++) and faster-whisper's word timestamps."""

import difflib
import json

import numpy as np
import pytest
import torch

from liteasr import runtime
from liteasr.data.audio import load_audio, read_dataset
from liteasr.decoding.transcribe import DecodingOptions, transcribe, transcribe_segments
from liteasr.errors import UserError
from liteasr.models.sources import offline_copy

WORDS = DecodingOptions.like_faster_whisper(word_timestamps=True)


@pytest.fixture(scope="module")
def long_clip(speech):
    """Consecutive utterances of one librispeech_other speaker, over 30 s: two windows."""
    ds = read_dataset(speech / "librispeech_other")
    speaker = ds.clips[0].path.name.split("-")[0]
    audio = []
    for c in ds.clips:
        if c.path.name.split("-")[0] == speaker:
            audio.append(load_audio(c.path))
        if sum(map(len, audio)) > 34 * 16000:
            break
    return np.concatenate(audio)


@pytest.fixture(scope="module")
def long_words(tiny_en, long_clip):
    """transcribe_segments of the long clip alone, with word timestamps."""
    return transcribe_segments(tiny_en, long_clip, WORDS)


def words_of(segments):
    return [w for s in segments for w in s.words]


@pytest.mark.slow
def test_words_time_the_text_they_belong_to_across_windows(tiny_en, long_clip, long_words):
    plain = transcribe_segments(tiny_en, long_clip, DecodingOptions.like_faster_whisper())
    text, segments, _, _ = long_words
    assert text == plain[0] and [s.text for s in segments] == [s.text for s in plain[1]]  # timing leaves text alone
    for s in segments:
        assert s.words and "".join(w.word for w in s.words).strip() == s.text
        assert s.start <= s.words[0].start + 0.5 and s.words[-1].end <= s.end + 0.5
    words = words_of(segments)
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.start <= w.end for w in words)
    assert 0 <= words[0].start < 2 and 30 < words[-1].end <= len(long_clip) / 16000 + 0.1  # the second window's
    assert all(0 < w.probability <= 1 for w in words) and np.mean([w.probability for w in words]) > 0.7
    with pytest.raises(UserError, match="word timestamps come with segments"):
        transcribe(tiny_en, [long_clip[:16000]], progress=False, warmup=False, options=WORDS)


@pytest.mark.slow
def test_ctranslate2s_own_alignment_finds_the_same_words(long_clip, long_words):
    """CTranslate2 aligns in C++ (Whisper.align, as faster-whisper calls it); liteasr's PyTorch path recomputes
    the heads' attention and warps in Python: the same words, at the same 20 ms frames."""
    ours = words_of(long_words[1])
    theirs = words_of(transcribe_segments(runtime.load("ctranslate2:tiny.en:float32"), long_clip, WORDS)[1])
    assert [w.word for w in ours] == [w.word for w in theirs]
    gaps = np.abs([[a.start - b.start, a.end - b.end] for a, b in zip(ours, theirs)])
    assert np.mean(gaps <= 0.021) > 0.95 and gaps.max() <= 0.1, gaps.max()
    assert np.abs([a.probability - b.probability for a, b in zip(ours, theirs)]).max() < 0.05


@pytest.mark.slow
def test_a_batch_of_clips_gets_what_each_clip_gets_alone(tiny_en, long_clip, long_words, speech):
    """A list of clips (the server's verbose_json batches, `transcribe --word-timestamps`) decodes together,
    window by window: clips of one and two windows get the text, segments and words each gets alone."""
    shorts = [load_audio(c.path) for c in read_dataset(speech / "librispeech_other").clips[-2:]]
    batched = transcribe_segments(tiny_en, [shorts[0], long_clip, shorts[1]], WORDS, batch_size=3)
    alone = [transcribe_segments(tiny_en, shorts[0], WORDS), long_words, transcribe_segments(tiny_en, shorts[1], WORDS)]
    for got, want in zip(batched, alone):
        assert got[0] == want[0] and got[2:] == want[2:] == ("en", None)
        assert [(s.start, s.end, s.text) for s in got[1]] == [(s.start, s.end, s.text) for s in want[1]]
        pairs = list(zip(words_of(got[1]), words_of(want[1])))
        assert len(pairs) == len(words_of(want[1])) > 5 and all(a.word == b.word for a, b in pairs)
        assert max(max(abs(a.start - b.start), abs(a.end - b.end)) for a, b in pairs) <= 0.021


@pytest.mark.slow
def test_words_agree_with_faster_whisper(tiny_en, speech):
    """faster-whisper's transcribe(word_timestamps=True) with its defaults, on the same clips: where the two
    write the same words, the same times."""
    faster_whisper = pytest.importorskip("faster_whisper")
    model = faster_whisper.WhisperModel(str(offline_copy("tiny.en")), device="cpu", compute_type="float32",
                                        cpu_threads=torch.get_num_threads())
    gaps, matched, total = [], 0, 0
    for clip in read_dataset(speech / "librispeech_other").clips[:3]:
        audio = load_audio(clip.path)
        segments, _ = model.transcribe(audio, language="en", word_timestamps=True, vad_filter=False)
        theirs = [w for s in segments for w in s.words]
        ours = words_of(transcribe_segments(tiny_en, audio, WORDS)[1])
        pairs = difflib.SequenceMatcher(a=[w.word for w in ours], b=[w.word for w in theirs], autojunk=False)
        for block in pairs.get_matching_blocks():
            for k in range(block.size):
                a, b = ours[block.a + k], theirs[block.b + k]
                gaps += [abs(a.start - b.start), abs(a.end - b.end)]
        matched, total = matched + sum(b.size for b in pairs.get_matching_blocks()), total + len(theirs)
    assert matched > 0.8 * total
    assert np.median(gaps) <= 0.02 and np.mean(np.array(gaps) <= 0.1) > 0.9, (np.median(gaps), max(gaps))


@pytest.mark.slow
def test_a_multilingual_model_times_words_in_the_clips_language(base, speech):
    """Polish on multilingual base (detected, not given, in a batch beside English): the words of the text, at
    CTranslate2's times."""
    lines = [json.loads(line) for line in (speech / "nemo_pl" / "manifest.jsonl").read_text().splitlines()[:3]]
    audio = np.concatenate([load_audio(speech / "nemo_pl" / line["audio"]) for line in lines])
    english = load_audio(read_dataset(speech / "librispeech_other").clips[0].path)
    (text, segments, language, detected), other = transcribe_segments(base, [audio, english],
                                                                       DecodingOptions(word_timestamps=True))
    assert language == detected[0] == "pl" and detected[1] > 0.5 and len(text.split()) >= 8
    assert other[2] == other[3][0] == "en" and len(other[0].split()) > 5  # each clip its own language
    ours = words_of(segments)
    assert " ".join(w.word.strip() for w in ours) == text
    theirs = words_of(transcribe_segments(runtime.load("ctranslate2:base:float32"), audio,
                                          DecodingOptions(word_timestamps=True))[1])
    assert [w.word for w in ours] == [w.word for w in theirs]
    assert np.abs([[a.start - b.start, a.end - b.end] for a, b in zip(ours, theirs)]).max() <= 0.021
