"""Per-window costs of large-v3 on one GPU, for the 1-vs-8-GPU estimate in RESULTS.md.

    python benchmarks/gpu_costs.py [--json OUT]

Random weights with large-v3's shapes (compute cost does not depend on the values): encoder forward,
calibration statistics (float64 sums of outer products, liteasr's LayerStats.add), one damage probe
(layers from a given index to the end), eigendecompositions, and greedy decoding with a fixed number
of tokens per clip. Needs a CUDA GPU; prints one JSON object.
"""

import argparse
import json
import platform
import time

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.generation import GenerationMixin

from liteasr.calibration.stats import LayerStats

LARGE_V3 = dict(d_model=1280, encoder_layers=32, decoder_layers=32, encoder_attention_heads=20,
                decoder_attention_heads=20, encoder_ffn_dim=5120, decoder_ffn_dim=5120, num_mel_bins=128,
                vocab_size=51866)


def timed(fn, repeats=5, warmup=2) -> float:
    """Median seconds of fn() (CUDA synchronized)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    dev, dtype, b = "cuda", torch.float16, args.batch
    model = WhisperForConditionalGeneration(WhisperConfig(**LARGE_V3)).to(dev, dtype).eval()
    encoder = model.model.encoder
    feats = torch.randn(b, 128, 3000, device=dev, dtype=dtype)
    out = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "python": platform.python_version(),
           "batch": b, "dtype": "float16"}
    with torch.inference_mode():
        out["encoder_s_per_window"] = timed(lambda: encoder(feats)) / b
        # calibration: every projection's outputs into float64 count / sum / outer (LayerStats.add)
        d, ffn, frames = LARGE_V3["d_model"], LARGE_V3["encoder_ffn_dim"], 1500
        stats_s = 0.0
        for dim, per_layer in ((d, 5), (ffn, 1)):
            s = LayerStats.empty(dim, device=dev)
            y = torch.randn(b, frames, dim, device=dev, dtype=dtype)
            stats_s += per_layer * LARGE_V3["encoder_layers"] * timed(lambda: s.add(y), repeats=3, warmup=1) / b
        out["stats_s_per_window"] = stats_s
        # a damage probe from layer i runs layers i..31 over its windows: per layer per window
        hidden = torch.randn(b, frames, d, device=dev, dtype=dtype)
        layer = encoder.layers[0]
        out["encoder_layer_s_per_window"] = timed(lambda: layer(hidden, attention_mask=None)) / b
        # eigendecompositions (float64): 160 of 1280 x 1280, 32 of 5120 x 5120
        for dim in (d, ffn):
            c = torch.randn(dim, dim, device=dev, dtype=torch.float64)
            c = c @ c.T
            out[f"eigh_{dim}_s"] = timed(lambda: torch.linalg.eigh(c), repeats=3, warmup=1)
        # evaluation: greedy decoding of `tokens` tokens per clip, batch b (encoder included)
        tokens = 40
        out["decode_tokens_per_clip"] = tokens
        # (the plain generate loop: Whisper's own needs a real generation config, timing is the same)
        out["transcribe_s_per_clip"] = timed(lambda: GenerationMixin.generate(
            model, input_features=feats, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, num_beams=1),
            repeats=3, warmup=1) / b
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
