"""WER as the Open ASR Leaderboard computes it: Whisper English normalizer, corpus level; other languages
with Whisper's basic normalizer, CER for languages written without spaces."""

import pytest

import json

from liteasr.data.audio import Clip, Dataset, read_dataset, read_sources
from liteasr.errors import UserError
from liteasr.evaluation.evaluate import corpus_wer, metric, normalize, paired_bootstrap, recipe_bootstrap, utterance_errors
from liteasr.evaluation.report import split_languages


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


@pytest.mark.parametrize("ref, hyp", [
    ("FOUR FOUR SEVEN TWO", "4, 4, 7, 2"),  # speechocean's digit prompts, as beam search writes them
    ("TWO TWO NINE", "2 2 9"),
    ("FIVE ONE SIX ONE", "5, 1, 6, 1"),  # a lone 1 would become "one"
    ("two one eight", "2-1-8"),
])
def test_digits_written_or_spelled_score_the_same(ref, hyp):
    assert normalize(ref) == normalize(hyp)
    assert corpus_wer([ref], [hyp]).wer == 0.0
    assert corpus_wer([ref], ["4, 4, 7"]).wer == 100.0  # a wrong string is still one error of one word


def test_only_single_digits_in_a_row_are_joined_and_only_in_english():
    assert normalize("the 3rd 2 men") == "the 3rd 2 men"
    assert normalize("page 12 of 40") == "page 12 of 40"
    assert normalize("In 1984 2 men came") == "in 1984 2 men came"
    assert normalize("2 3.5 cups") == "2 3.5 cups"
    assert normalize("dwa 2 3", "pl") == "dwa 2 3"


def test_a_digit_loop_costs_its_length_written_or_spelled():
    from liteasr.evaluation.evaluate import LONGEST_NUMBER

    ref = "FIVE FIVE SEVEN ONE"  # a speechocean prompt; a greedy base at 0.7 looped on it as below
    written = "5, 12, 7, " + ", ".join(["8"] * 40)
    spelled = "five twelve seven " + " ".join(["eight"] * 40)
    for loop in (written, spelled):
        w = corpus_wer([ref], [loop])
        assert w.substitutions + w.deletions + w.insertions >= 40  # not the one long number it joins into
    longest = "1" * LONGEST_NUMBER  # a number as long as a number gets stays one word
    assert normalize(" ".join(longest)) == longest
    assert normalize("one " * (LONGEST_NUMBER + 1)).split() == ["1"] * (LONGEST_NUMBER + 1)
    assert normalize("8" * 20, "es") == "8" * 20  # other languages are scored as Whisper's basic normalizer does


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


def test_paired_bootstrap_interval():
    refs = ["the cat sat on the mat"] * 40
    same = utterance_errors(refs, refs)
    assert [w for _, w in same] == [6] * 40 and all(e == 0 for e, _ in same)
    zero = paired_bootstrap(same, same)
    assert (zero.delta, zero.low, zero.high) == (0.0, 0.0, 0.0)
    # B drops one word in every utterance: worse by 1/6 of the words, and the interval is sure of it
    worse = utterance_errors(refs, [r.rsplit(" ", 1)[0] for r in refs])
    d = paired_bootstrap(same, worse)
    assert d.delta == pytest.approx(100 / 6) and d.low == pytest.approx(100 / 6) and d.high == pytest.approx(100 / 6)
    # B worse on only 2 utterances of 40: a positive delta whose interval reaches 0
    mixed = same[:38] + worse[38:]
    d = paired_bootstrap(same, mixed, seed=1)
    assert d.delta > 0 and d.low <= 0.0 < d.high
    assert paired_bootstrap(same, mixed, seed=1) == d  # seeded
    with pytest.raises(ValueError):
        paired_bootstrap(same, same[:3])


def test_recipe_bootstrap_resamples_the_runs_too():
    """A recipe of several runs (seeds): its errors are the runs' mean, and the interval also resamples
    the runs, so runs that disagree widen it where the utterances alone would not."""
    refs = ["the cat sat on the mat"] * 40
    same = utterance_errors(refs, refs)
    worse = utterance_errors(refs, [r.rsplit(" ", 1)[0] for r in refs])  # one error in every utterance
    assert recipe_bootstrap([same], [worse]) == paired_bootstrap(same, worse)
    assert recipe_bootstrap([same], [worse, worse, worse]) == paired_bootstrap(same, worse)  # identical runs
    half = [(e / 2, w) for e, w in worse]  # the two runs' mean: half an error everywhere
    utterances_only = paired_bootstrap(same, half)
    assert (utterances_only.low, utterances_only.high) == pytest.approx((100 / 12, 100 / 12))
    d = recipe_bootstrap([same], [worse, same])
    assert d.delta == pytest.approx(100 / 12)
    assert d.low == pytest.approx(0.0) and d.high == pytest.approx(100 / 6)  # either run may be drawn twice
    assert recipe_bootstrap([same], [worse, same]) == d  # seeded
    with pytest.raises(ValueError, match="same utterances"):
        recipe_bootstrap([same], [worse, same[:3]])


def test_other_languages_keep_their_letters_and_words():
    # the English normalizer strips accents and spells out English: wrong for every other language
    assert normalize("Lubię czytać, przed snem!", "pl") == "lubię czytać przed snem"
    assert normalize("E' inciampato. Où est-ce?", "it").split() == ["e", "inciampato", "où", "est", "ce"]
    assert normalize("नमस्ते दुनिया", "hi").split() == ["नमस्ते", "दुनिया"]  # vowel signs kept: two words
    assert corpus_wer(["Größe Straße"], ["grosse strasse"], "de").wer == 100.0
    assert corpus_wer(["Lubię czytać."], ["lubię czytać"], "pl").wer == 0.0


def test_languages_without_spaces_are_scored_by_characters():
    assert metric("ja") == metric("zh") == "cer" and metric("pl") == metric(None) == "wer"
    w = corpus_wer(["私は本を読む。"], ["私は本を読んだ"], "ja")
    assert (w.words, w.substitutions, w.insertions) == (6, 1, 1)  # characters, punctuation dropped
    assert utterance_errors(["我喜欢读书"], ["我喜欢书"], "zh") == [(1, 5)]


def test_manifest_language_is_read_and_checked(tmp_path):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    sf.write(tmp_path / "b.wav", np.zeros(1600, np.float32), 16000)
    lines = [{"audio": "a.wav", "text": "x", "language": "PL"}, {"audio": "b.wav", "text": "y", "language": "de"}]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    ds = read_dataset(tmp_path)
    assert [c.language for c in ds.clips] == ["pl", "de"]
    assert [(d.name, len(d.clips)) for d in split_languages([ds])] == [(f"{ds.name}:de", 1), (f"{ds.name}:pl", 1)]
    one = Dataset("en", [Clip(tmp_path / "a.wav", "x")])
    assert split_languages([one]) == [one]
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"audio": "a.wav", "language": 3}) + "\n")
    with pytest.raises(UserError, match="manifest.jsonl:1: \"language\" must be a language code"):
        read_dataset(tmp_path)


def test_languages_are_whispers_codes_from_names_and_locales(tmp_path):
    """`English` and `en` are one language: the English normalizer scores both (a name used to reach the
    basic normalizer, and `ja` written `Japanese` would have been scored by words)."""
    import numpy as np
    import soundfile as sf

    written = ["English", "pt-BR", "it_it", "zh-CN", "Japanese", "DE"]
    for i in range(len(written)):
        sf.write(tmp_path / f"{i}.wav", np.zeros(1600, np.float32), 16000)
    (tmp_path / "manifest.jsonl").write_text("".join(
        json.dumps({"audio": f"{i}.wav", "text": "x", "language": lang}) + "\n" for i, lang in enumerate(written)))
    assert [c.language for c in read_dataset(tmp_path).clips] == ["en", "pt", "it", "zh", "ja", "de"]
    assert metric("ja") == "cer" and normalize("It's 3", "en") == "it is 3"


def _hf_table(tmp_path, languages, class_names=None):
    """A dataset of silent clips with a language column, saved to disk and as parquet."""
    import datasets
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    audio = {"bytes": (tmp_path / "a.wav").read_bytes(), "path": "a.wav"}
    table = datasets.Dataset.from_dict({"audio": [audio] * len(languages), "text": ["x"] * len(languages),
                                        "lang": languages})
    table = table.cast_column("audio", datasets.Audio(decode=False))  # as the Hub stores audio
    if class_names:
        table = table.cast_column("lang", datasets.ClassLabel(names=class_names))
    table.save_to_disk(str(tmp_path / "saved"))
    table.to_parquet(str(tmp_path / "set.parquet"))
    return [str(tmp_path / "saved"), str(tmp_path / "set.parquet")]


def test_hugging_face_datasets_take_languages_from_a_column(tmp_path):
    pytest.importorskip("datasets")
    # FLEURS writes names, Common Voice locales; VoxPopuli stores a class label
    for source in _hf_table(tmp_path, ["Italian", "pt-BR", "en"]):
        ds = read_dataset(source, language_column="lang")
        assert [c.language for c in ds.clips] == ["it", "pt", "en"]
        assert [(d.name, len(d.clips)) for d in split_languages([ds])] == \
            [(f"{ds.name}:en", 1), (f"{ds.name}:it", 1), (f"{ds.name}:pt", 1)]
        assert {c.language for c in read_dataset(source).clips} == {None}  # no column named: no language
        with pytest.raises(UserError, match="no language column 'locale' .*columns: audio, text, lang"):
            read_dataset(source, language_column="locale")
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    saved, _ = _hf_table(labelled, [1, 0], class_names=["de", "fr"])
    assert [c.language for c in read_dataset(saved, language_column="lang").clips] == ["fr", "de"]
    empty = tmp_path / "empty"
    empty.mkdir()
    for source in _hf_table(empty, ["it", " "]):
        with pytest.raises(UserError, match="row 1: the language column holds ' ', not a language"):
            read_dataset(source, language_column="lang")


def test_a_source_states_its_language_after_an_at_sign(tmp_path):
    """`SOURCE@LANG` for sources that state no language (a folder of audio, one configuration of Multilingual
    LibriSpeech): every clip is in LANG; a clip that says another language, or an unknown LANG, is an error."""
    pytest.importorskip("datasets")
    import numpy as np
    import soundfile as sf

    folder = tmp_path / "polish"
    folder.mkdir()
    for i in range(2):
        sf.write(folder / f"{i}.wav", np.zeros(1600, np.float32), 16000)
    assert [c.language for c in read_dataset(f"{folder}@Polish").clips] == ["pl", "pl"]
    assert read_dataset(f"{folder}@pl").name == "polish" and read_dataset(folder).clips[0].language is None
    _, parquet = _hf_table(tmp_path, ["x", "y"])
    [ds] = read_sources([f"{parquet}@pt-BR"])
    assert [c.language for c in ds.clips] == ["pt", "pt"]
    # a manifest: lines without a language take the source's, a line with another one is an error
    lines = [{"audio": "0.wav", "text": "x"}, {"audio": "1.wav", "text": "y", "language": "pl"}]
    (folder / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert [c.language for c in read_dataset(f"{folder}@pl").clips] == ["pl", "pl"]
    with pytest.raises(UserError, match=r"1.wav: in pl, but .*manifest.jsonl@de says de"):
        read_dataset(f"{folder / 'manifest.jsonl'}@German")
    with pytest.raises(UserError, match="'klingon' after '@' is not a language Whisper knows"):
        read_dataset(f"{folder}@klingon")
    # a path that exists as written is not split
    odd = tmp_path / "take@de"
    odd.mkdir()
    sf.write(odd / "a.wav", np.zeros(1600, np.float32), 16000)
    assert read_dataset(odd).clips[0].language is None
    assert read_dataset(f"{odd}@it").clips[0].language == "it"


def test_runaway_lengths_count_words_not_normalized_numbers():
    from liteasr.evaluation.evaluate import RUNAWAY, length_ratios

    refs = ["THREE TWO TWO SEVEN", "the cat sat", "dated (which was printed in fourteen sixty-two)", "你好世界"]
    hyps = ["3, 2, 2, 7.", "the cat sat " * 4, "dated, which was printed in 1462.", "你好世界你好世界"]
    english = length_ratios(refs[:3], hyps[:3], "en")
    assert english[0] == 1.0 and english[1] == 4.0 > RUNAWAY  # digits are words; a loop is a loop
    assert english[2] < 1  # words in parentheses count (the normalizers drop them)
    assert length_ratios(refs[3:], hyps[3:], "zh") == [2.0]  # characters for languages without spaces


def test_speechoceans_digit_prompts_written_in_digits_score_right(speech):
    """Every speechocean prompt that is a string of spelled digits ("THREE TWO TWO SEVEN"), transcribed in
    digits as Whisper writes them ("3, 2, 2, 7"), scores no error; one digit wrong scores one error."""
    spelled = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
               "seven": "7", "eight": "8", "nine": "9"}
    refs = [c.text for c in read_dataset(speech / "speechocean_train").clips
            if c.text and all(w in spelled for w in c.text.lower().split())]
    assert len(refs) >= 20
    written = [", ".join(spelled[w] for w in r.lower().split()) for r in refs]
    assert corpus_wer(refs, written).wer == 0.0
    wrong = [w[:-1] + ("1" if w[-1] != "1" else "2") for w in written]
    assert corpus_wer(refs, wrong).wer == 100.0  # each prompt is one scoring unit, and each is wrong
