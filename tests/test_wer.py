"""WER as the Open ASR Leaderboard computes it: Whisper English normalizer, corpus level."""

import pytest

from liteasr.evaluate import corpus_wer, normalize


@pytest.mark.parametrize("ref, hyp", [
    ("It's twenty-five dollars.", "it is $25"),
    ("Mr. Smith won't go.", "mister smith will not go"),
    ("The colour grey", "the color gray"),
    ("Hello, World!", "hello world"),
    ("I've got 3 apples", "I have got three apples"),
])
def test_normalizer_makes_equivalent_texts_equal(ref, hyp):
    assert normalize(ref) == normalize(hyp)
    assert corpus_wer([ref], [hyp]).wer == 0.0


def test_counts_substitutions_deletions_insertions():
    w = corpus_wer(["the cat sat on the mat", "a b c d"], ["the bat sat on the mat", "a c d e f"])
    assert (w.substitutions, w.deletions, w.insertions, w.words) == (1, 1, 2, 10)
    assert w.wer == pytest.approx(40.0)


def test_corpus_level_differs_from_mean_of_utterances():
    refs = ["one", "the quick brown fox jumps over the lazy dog today"]  # 1 word, 10 words
    hyps = ["two", "the quick brown fox jumps over the lazy dog today"]
    w = corpus_wer(refs, hyps)
    assert w.wer == pytest.approx(100 * 1 / 11)  # total edits / total words
    per_utterance = (100.0 + 0.0) / 2
    assert w.wer != pytest.approx(per_utterance)


def test_empty_references_are_excluded_and_counted():
    w = corpus_wer(["hello there", "", "   "], ["hello there", "noise", "uh"])
    assert w.n == 1 and w.excluded == 2 and w.wer == 0.0


def test_empty_hypothesis_is_all_deletions():
    w = corpus_wer(["a b c"], [""])
    assert w.deletions == 3 and w.wer == 100.0
