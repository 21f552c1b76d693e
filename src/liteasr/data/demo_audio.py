"""Speech the project makes itself with espeak-ng, for demos and tests on machines without ../shared."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from liteasr.atomic import atomic_dir
from liteasr.errors import UserError

# Sentences written for this project (free to use), varied in length and phonetics.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please bring the blue folder to the meeting room.",
    "We measured the speed of the new encoder on a small machine.",
    "The train to the city leaves at seven in the morning.",
    "She opened the window and the cold air filled the room.",
    "A small boat drifted slowly across the quiet lake.",
    "Turn left at the second light and park near the library.",
    "The weather will be sunny with a light wind from the west.",
    "He wrote a long letter to his sister about the harvest.",
    "Our team finished the report before the end of the week.",
    "The children played football in the park after school.",
    "Fresh bread and warm soup are served every evening.",
    "The museum closes early on public holidays.",
    "Could you read the first page of the book aloud?",
    "The engineer checked every cable before starting the test.",
    "Rain is expected to fall for most of the afternoon.",
    "The garden was full of roses, tulips and tall green grass.",
    "Please speak clearly so that everyone can hear you.",
    "The price of coffee has gone up again this year.",
    "A loud noise woke the dog in the middle of the night.",
    "The students listened carefully to the history lecture.",
    "Keep the receipt in case you need to return the shoes.",
    "The old bridge was repaired with steel and concrete.",
    "They walked along the beach until the sun went down.",
    "Every morning she runs five kilometres before breakfast.",
    "The doctor asked him to rest for a few days.",
    "Our flight was delayed because of heavy snow.",
    "The bakery on the corner sells the best apple pie.",
    "He forgot his umbrella and got wet on the way home.",
    "The company hired three new engineers last month.",
    "Water boils at one hundred degrees at sea level.",
    "The band played music until late in the evening.",
]
VOICES = ["en-us", "en", "en-us+f3", "en+m3"]


def espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise UserError("espeak-ng is not installed (apt-get install espeak-ng) and ../shared is absent: no demo audio")
    return exe


def make_demo_audio(dst: str | Path, count: int = len(SENTENCES), voices=VOICES, overwrite: bool = False) -> Path:
    """Synthesize `count` clips (sentence x voice) into `dst` with a manifest.jsonl; reuse if present."""
    dst = Path(dst)
    if (dst / "manifest.jsonl").is_file() and not overwrite:
        return dst / "manifest.jsonl"
    exe = espeak()
    with atomic_dir(dst, overwrite=True) as tmp:
        (tmp / "audio").mkdir()
        lines = []
        for i in range(count):
            text, voice = SENTENCES[i % len(SENTENCES)], voices[(i // len(SENTENCES) + i) % len(voices)]
            wav = tmp / "audio" / f"demo_{i:03d}.wav"
            subprocess.run([exe, "-v", voice, "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
            lines.append(json.dumps({"audio": f"audio/{wav.name}", "text": text, "speaker": voice, "source": "espeak-ng"}))
        (tmp / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return dst / "manifest.jsonl"
