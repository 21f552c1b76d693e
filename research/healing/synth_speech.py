"""Synthetic speech to heal on: sentences read by many text-to-speech voices (Debian's espeak-ng, with its
accents and voice variants at random pitch and rate, and festival's diphone and HTS voices), written as a
manifest folder that `heal_on.py --heal-on` and `--calibration` take like any other.

    python research/healing/synth_speech.py OUT --count 575 --texts ../shared/data/speech/{vctk_p239,cathy_arctic}

For one question: is healing short of audio, or short of *real* audio? The 0.6 gap is healing's fit not
carrying to new utterances (research/healing/refine.md, "At 0.6: where the limit is"), and ../shared holds 2.1
hours in all; synthetic speech is unlimited. The sentences come from the transcripts of `--texts`
(manifests no evaluation uses), never from the evaluation sets. Needs `apt-get install espeak-ng festival
festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts`.
"""

import argparse
import json
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import soundfile as sf

from liteasr.atomic import atomic_dir
from liteasr.data.audio import SAMPLE_RATE, load_audio, read_dataset
from liteasr.errors import UserError

ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
# espeak-ng's human-sounding variants (its robots, whispers and effects left out)
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
            "klatt3", "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Gene", "Hugo", "Jacky", "Lee", "Michael",
            "Mike", "adam", "anika", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward",
            "grandma", "grandpa", "iven", "john", "linda", "max", "michel", "norbert", "paul", "quincy", "rob",
            "robert", "shelby", "steph", "travis", "victor", "zac"]
FESTIVAL = ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"]


def espeak(text: str, wav: Path, rng: random.Random) -> str:
    voice = f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS)}"
    pitch, rate = rng.randint(25, 75), rng.randint(130, 190)
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(rate), "-w", str(wav), text],
                   check=True, capture_output=True)
    return f"espeak-ng {voice} p{pitch} s{rate}"


def festival(text: str, wav: Path, rng: random.Random) -> str:
    voice, stretch = rng.choice(FESTIVAL), round(rng.uniform(0.85, 1.2), 2)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(text)
        f.flush()
        subprocess.run(["text2wave", "-eval", f"(voice_{voice})", "-eval",
                        f"(Parameter.set 'Duration_Stretch {stretch})", "-o", str(wav), f.name],
                       check=True, capture_output=True)
    return f"festival {voice} x{stretch}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output")
    ap.add_argument("--texts", nargs="+", required=True, help="manifests whose transcripts are read aloud")
    ap.add_argument("--count", type=int, default=575)
    ap.add_argument("--festival-share", type=float, default=0.3, help="the share of clips festival's voices read")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    missing = [exe for exe in ("espeak-ng", "text2wave") if shutil.which(exe) is None]
    if missing:
        raise SystemExit(f"synth_speech.py: {', '.join(missing)} not installed (see the docstring's apt-get line)")
    try:
        sentences = sorted({c.text.strip() for data in args.texts for c in read_dataset(data).clips if c.text})
    except UserError as exc:
        raise SystemExit(f"synth_speech.py: {exc}") from None
    if not sentences:
        raise SystemExit("synth_speech.py: the --texts manifests hold no transcripts")
    rng = random.Random(args.seed)
    with atomic_dir(Path(args.output), overwrite=True) as tmp:
        (tmp / "audio").mkdir()
        lines = []
        for i in range(args.count):
            text = rng.choice(sentences)
            raw = tmp / "audio" / f"{i:04d}.wav"
            speaker = (festival if rng.random() < args.festival_share else espeak)(text, raw, rng)
            flac = raw.with_suffix(".flac")
            sf.write(flac, load_audio(raw), SAMPLE_RATE)  # 16 kHz mono, as the shared sets
            raw.unlink()
            lines.append(json.dumps({"audio": f"audio/{flac.name}", "text": text, "speaker": speaker,
                                     "source": "synthetic"}))
            if i % 50 == 0:
                print(f"{i}/{args.count} clips", flush=True)
        (tmp / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.count} clips to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
