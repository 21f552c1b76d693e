"""Where a decoding step's time goes at batch 1 and 8 (PyTorch, the machine's default threads): the
first step (it projects the 1500 encoder states to every decoder layer's cross-attention keys and
values), a later step's decoder layers, its vocabulary projection, and the cross-attention alone (one
layer's scaled_dot_product_attention over 1500 keys, times the decoder's layers).

    python research/decoding/decode_steps.py [MODEL] [--steps 30]

Batching shares what a step reads once for all rows (weights, the vocabulary matrix, Python overhead);
it cannot share what each row reads for itself (its 1500 cross-attention keys and values) nor the first
step, both per clip like the encoder (benchmarks/RESULTS.md, "liteasr serve under load").
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


def ms(fn, repeats: int = 20) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats * 1e3


@torch.inference_mode()
def steps(model, encoded, features, count: int) -> tuple[float, float, float]:
    """(first step ms, median later step's decoder ms, median vocabulary projection ms), for the whole batch."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    prompt = generation.build_prompt(model.generation_config, ["en"] * len(features))  # English-only: tiny.en
    inputs, cache = prompt, EncoderDecoderCache(DynamicCache(), DynamicCache())
    decoder, projection = [], []
    for _ in range(count):
        t0 = time.perf_counter()
        hidden = model.model.decoder(input_ids=inputs, encoder_hidden_states=encoded, cache=cache,
                                     use_cache=True).last_hidden_state[:, -1]
        t1 = time.perf_counter()
        inputs = generation.vocabulary_logits(model, hidden).argmax(-1)[:, None]  # greedy, without suppression: timing only
        decoder.append(t1 - t0)
        projection.append(time.perf_counter() - t1)
    return decoder[0] * 1e3, statistics.median(decoder[1:]) * 1e3, statistics.median(projection[1:]) * 1e3


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default="tiny.en")
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    loaded = runtime.load(args.model)
    model, config = loaded.model, loaded.model.config
    clips = sample(read_dataset(speech_or_exit() / "librispeech_other").clips, 8, seed=0)
    features = whisper.features(loaded.processor, [load_audio(c) for c in clips])
    with torch.inference_mode():
        encoded = whisper.encode(model, features)
    heads, frames = config.decoder_attention_heads, encoded.shape[1]
    print(f"{args.model}, {torch.get_num_threads()} threads, {args.steps} steps")
    print("| batch | first step, per clip | later step: decoder | vocabulary projection | cross-attention alone "
          "| later step, per clip |")
    print("|---:|---:|---:|---:|---:|---:|")
    for batch in (1, 8):
        steps(model, encoded[:batch], features[:batch], 3)  # warm-up
        first, later, vocab = steps(model, encoded[:batch], features[:batch], args.steps)
        q = torch.randn(batch, heads, 1, config.d_model // heads)
        k, v = (torch.randn(batch, heads, frames, config.d_model // heads) for _ in range(2))
        cross = ms(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)) * config.decoder_layers
        print(f"| {batch} | {first / batch:.1f} ms | {later:.2f} ms | {vocab:.2f} ms | {cross:.2f} ms "
              f"| {(later + vocab) / batch:.2f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
