"""Where batching can gain, in-process: transcription time per clip at batch 1 and 8, and the encoder's
part of each (PyTorch, the machine's default threads).

    python benchmarks/batch_shares.py [MODEL]

Batching saves only what does not already scale per window, so the encoder's share at batch 1 bounds
the server's batching gain (benchmarks/RESULTS.md, "liteasr serve under load").
"""

import sys

import torch
from _common import speech_or_exit

from liteasr import runtime
from liteasr.audio import load_audio, read_dataset, sample
from liteasr.bench import encoder_latency, transcription_latency


def main() -> int:
    model = runtime.load(sys.argv[1] if len(sys.argv) > 1 else "tiny.en")
    clips = sample(read_dataset(speech_or_exit() / "librispeech_other").clips, 16, seed=0)
    audios = [load_audio(c) for c in clips]
    print(f"{len(audios)} librispeech_other clips, {torch.get_num_threads()} threads")
    for batch in (1, 8):
        (encoder,) = encoder_latency([model], batch_size=batch, repeats=3, warmup=1)
        (whole,) = transcription_latency([model], audios, batch_size=batch, repeats=2)
        per_clip = whole.median_ms / len(audios)
        print(f"batch {batch}: transcription {per_clip:.0f} ms per clip; encoder {encoder.median_ms:.0f} ms per "
              f"window ({encoder.median_ms / per_clip:.0%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
