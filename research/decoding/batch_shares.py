"""Where batching can gain, in-process: transcription time per clip at batch 1 and 8, and the encoder's
part of each (PyTorch, the machine's default threads). Batch sizes are interleaved round by round, so a
slow spell of the machine hits both.

    python research/decoding/batch_shares.py [MODEL] [--rounds 3] [--clips 16]

Batching saves only what does not already scale per window, so the encoder's share at batch 1 bounds
the server's batching gain (benchmarks/RESULTS.md, "liteasr serve under load").
"""

import sys
from pathlib import Path
import argparse
import statistics

import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the benchmarks' _common
from _common import speech_or_exit  # noqa: E402

from liteasr import runtime
from liteasr.data.audio import load_audio, read_dataset, sample
from liteasr.evaluation.bench import encoder_latency
from liteasr.decoding.transcribe import transcribe

BATCHES = (1, 8)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default="tiny.en")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clips", type=int, default=16)
    args = p.parse_args()
    model = runtime.load(args.model)
    clips = sample(read_dataset(speech_or_exit() / "librispeech_other").clips, args.clips, seed=0)
    audios = [load_audio(c) for c in clips]
    print(f"{len(audios)} librispeech_other clips, {torch.get_num_threads()} threads, {args.rounds} rounds")
    transcribe(model, audios[:8], batch_size=8, progress=False)  # warm-up (allocation, kernel choice)
    per_clip = {b: [] for b in BATCHES}
    encoder = {b: [] for b in BATCHES}
    for r in range(args.rounds):
        for b in BATCHES:
            (timing,) = encoder_latency([model], batch_size=b, repeats=1, warmup=0, seed=r)
            encoder[b].append(timing.median_ms)
            per_clip[b].append(transcribe(model, audios, batch_size=b, progress=False, warmup=False).seconds
                               * 1e3 / len(audios))
        print(f"round {r + 1}: " + "; ".join(f"batch {b} {per_clip[b][-1]:.0f} ms per clip, encoder {encoder[b][-1]:.0f} ms"
                                             for b in BATCHES) + f"; gain {per_clip[1][-1] / per_clip[8][-1]:.2f}x", flush=True)
    med = {b: statistics.median(per_clip[b]) for b in BATCHES}
    for b in BATCHES:
        enc = statistics.median(encoder[b])
        print(f"batch {b}: transcription {med[b]:.0f} ms per clip; encoder {enc:.0f} ms per window ({enc / med[b]:.0%})")
    gains = [one / eight for one, eight in zip(per_clip[1], per_clip[8])]
    print(f"batching gain in-process: {statistics.median(gains):.2f}x (rounds {min(gains):.2f}-{max(gains):.2f}); "
          f"bound if decoding at batch 8 were free: {med[1] / statistics.median(encoder[8]):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
