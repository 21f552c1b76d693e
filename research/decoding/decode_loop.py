"""liteasr's greedy decoding loop (generation.greedy_ids) against transformers' generate(): time per clip
at batch 1 and 8, interleaved round by round, and whether every clip gets the same tokens.

    python research/decoding/decode_loop.py [MODEL ...] [--rounds 2] [--clips 16]

Both include features, the encoder and decoding. The loop runs the encoder one window at a time on CPU,
lets finished clips leave the batch and reads a transposed copy of the vocabulary projection.
"""

import sys
from pathlib import Path
import argparse
import statistics
import time

import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the benchmarks' _common
from _common import speech_or_exit  # noqa: E402

from liteasr import runtime

from liteasr.models import generation, whisper
from liteasr.data.audio import load_audio, read_dataset, sample
from liteasr.decoding.transcribe import _generate
from liteasr.models.generation import token_budget

BATCHES = (1, 8)


def run(loaded, audios, batch, ours: bool) -> tuple[float, list[list[int]]]:
    seconds, ids = 0.0, []
    for start in range(0, len(audios), batch):
        group = audios[start : start + batch]
        t0 = time.perf_counter()
        feats = whisper.features(loaded.processor, group)
        budget = token_budget(max(len(a) for a in group), loaded.model.generation_config.max_length)
        out = (generation.greedy_ids(loaded.model, loaded.encode(feats),
                                  generation.build_prompt(loaded.generation_config, ["en"] * len(group)), budget) if ours
               else _generate(loaded.model, input_features=feats, max_new_tokens=budget))
        seconds += time.perf_counter() - t0
        eos = loaded.model.generation_config.eos_token_id
        ids += [[t for t in row if t != eos] for row in out.tolist()]
    return seconds * 1e3 / len(audios), ids


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", default=["tiny.en"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clips", type=int, default=16)
    args = p.parse_args()
    clips = sample(read_dataset(speech_or_exit() / "librispeech_other").clips, args.clips, seed=0)
    audios = [load_audio(c) for c in clips]
    print(f"{len(audios)} librispeech_other clips, {torch.get_num_threads()} threads, {args.rounds} rounds")
    print("| model | batch | generate ms/clip | liteasr loop ms/clip | speedup | same tokens |")
    print("|---|---:|---:|---:|---:|---:|")
    for spec in args.models:
        loaded = runtime.load(spec)
        run(loaded, audios[:8], 8, True), run(loaded, audios[:8], 8, False)  # warm-up
        for batch in BATCHES:
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(args.rounds):
                ms, reference = run(loaded, audios, batch, ours=False)
                times[False].append(ms)
                ms, ids = run(loaded, audios, batch, ours=True)
                times[True].append(ms)
                same = sum(a == b for a, b in zip(ids, reference))
            old, new = statistics.median(times[False]), statistics.median(times[True])
            print(f"| {spec} | {batch} | {old:.0f} | {new:.0f} | {old / new:.2f}x | {same}/{len(audios)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
