"""Synthetic speech in many languages, as calibration coverage: espeak-ng reading Faker's localized text.

    python research/multilingual/synth_languages.py OUT --languages fr nl ru cs --count 96

For one question (issue 34, part 4): the factors of a model calibrated on English and Polish miss the
directions Italian, German and Spanish use (research/multilingual/multilingual.md). Real speech in every
language a user serves may not be at hand; espeak-ng speaks over a hundred languages. Not as voices (espeak
sounds like no person) but as coverage: does its audio in a language move the factors toward what real
speakers of that language use, and does it help languages it does not speak?

The text is Faker's (a well-kept library with per-locale word lists, names and addresses), never any
evaluation transcript: random words of the language where Faker has them, localized names, addresses and
jobs otherwise. Each clip: one language, a random espeak-ng voice variant, pitch and rate. Writes OUT/manifest.jsonl
(with `language` and `speaker`) and 16 kHz FLAC. Needs `apt-get install espeak-ng` and `pip install faker`.
"""

import argparse
import json
import random
import shutil
import subprocess
import sys
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
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3"]


def text(fake, lorem: bool, rng: random.Random) -> str:
    if lorem and rng.random() < 0.7:
        return fake.sentence(nb_words=rng.randint(6, 16))
    parts = [fake.name(), fake.address().replace("\n", ", "), fake.job()]
    rng.shuffle(parts)
    return ". ".join(parts[: rng.randint(1, 3)]) + "."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output")
    ap.add_argument("--languages", nargs="+", required=True, choices=sorted(LANGUAGES))
    ap.add_argument("--count", type=int, default=96, help="clips in all, spread evenly over the languages")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("synth_languages.py: espeak-ng not installed (apt-get install espeak-ng)")
    try:
        from faker import Faker
    except ImportError:
        raise SystemExit("synth_languages.py: faker not installed (pip install faker)") from None
    rng = random.Random(args.seed)
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
            subprocess.run(["espeak-ng", "-v", f"{voice}+{variant}", "-p", str(pitch), "-s", str(rate),
                            "-w", str(raw), said], check=True, capture_output=True)
            flac = raw.with_suffix(".flac")
            sf.write(flac, load_audio(raw), SAMPLE_RATE)  # 16 kHz mono, as the shared sets
            raw.unlink()
            lines.append(json.dumps({"audio": f"audio/{flac.name}", "text": said, "language": code,
                                     "speaker": f"espeak-ng {voice}+{variant}", "source": "synthetic"},
                                    ensure_ascii=False))
        (tmp / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.count} clips in {len(args.languages)} languages to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
