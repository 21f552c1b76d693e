"""Issue 37's encoder table on a GPU: ms per clip at 2, 5, 10 and 20 s of audio, dense tiny.en and the default
0.7 compression, each on its padded 30 s window and on the adaptive window, PyTorch fp16 and fp32, one clip and
batches of 16 and 128, interleaved (bench.encoder_latency, as transcription runs the encoder: whisper.encode).

    python benchmarks/window_gpu.py pack runs/window/tiny.en-0.7 .gpu       # here: the models' config.json
    python benchmarks/window_gpu.py run .gpu [--json OUT] [--device cuda]   # on the GPU machine
    python benchmarks/window_gpu.py table benchmarks/window_gpu_h200.json   # its tables again, from the JSON

Encoder time depends on the shapes (the ranks in config.json and the window), not on the weight values, so
only the two config.json files travel (a lent GPU machine takes 64 MiB and has no model hub) and the weights
are random: dense tiny.en's architecture and the 0.7 checkpoint's low-rank architecture with its attention
modes. The window is the product's policy (whisper.AUTO_WINDOW: the audio + 1 s, at least 5 s), the one a model
healed for the window records; its healed weights have the shapes of the model it was healed from.
"""

import json
import platform
import shutil
import sys
import time
from pathlib import Path

import torch
from _common import gpu_bench_main

from liteasr.evaluation.bench import encoder_latency
from liteasr.models import whisper
from liteasr.models.sources import model_kind, resolve_model

SECONDS = (2, 5, 10, 20)


def pack(lite: Path, out: Path) -> None:
    """The config.json of dense tiny.en and of the lite checkpoint `lite`, as out/dense and out/lite."""
    for name, spec in (("dense", "tiny.en"), ("lite", lite)):
        (out / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(resolve_model(spec) / "config.json", out / name / "config.json")
    print(f"packed {out}: carry it to the GPU machine")


def build(config_dir: Path, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """A model of config_dir's architecture with random weights (seeded), as whisper.load would set it up."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from liteasr.models.hf.configuration_lite_whisper import LiteWhisperConfig
    from liteasr.models.hf.modeling_lite_whisper import LiteWhisperForConditionalGeneration

    torch.manual_seed(0)
    lite = model_kind(config_dir) == "lite-whisper"
    config = (LiteWhisperConfig if lite else WhisperConfig).from_pretrained(config_dir)
    config._attn_implementation = "sdpa"  # whisper.load's choice
    with torch.device(device):  # built where it runs: large-v3's random init takes minutes on a CPU
        model = (LiteWhisperForConditionalGeneration if lite else WhisperForConditionalGeneration)(config)
    model.to(device, dtype).eval()
    if lite:
        whisper.force_attention(model, "auto")
    return model


def run(packed: Path, device: str, repeats: int, batches: list[int]) -> dict:
    dtypes = {"fp16": torch.float16, "fp32": torch.float32}
    rows = []  # (dtype, label, model, policy)
    for dname, dtype in dtypes.items():
        if device == "cpu" and dtype == torch.float16:
            continue  # a CPU smoke run: fp16 convolutions are not what a CPU runs
        dense, lite = build(packed / "dense", device, dtype), build(packed / "lite", device, dtype)
        rows += [(dname, "dense, padded", dense, whisper.PADDED), (dname, "dense, window", dense, whisper.AUTO_WINDOW),
                 (dname, "0.7, padded", lite, whisper.PADDED), (dname, "0.7, window", lite, whisper.AUTO_WINDOW)]
    table = {}
    for batch in batches:
        for seconds in SECONDS:
            for dname in dtypes:  # one interleaved run per dtype: rows compare within a dtype
                group = [r for r in rows if r[0] == dname]
                if not group:
                    continue
                frames = [policy.frames(seconds * 16000) for *_, policy in group]
                timings = encoder_latency([m for _, _, m, _ in group], batch_size=batch, repeats=repeats, warmup=5,
                                          frames=frames)
                for (_, label, _, _), t, f in zip(group, timings, frames):
                    table.setdefault(str(batch), {}).setdefault(f"{dname} / {label}", {})[str(seconds)] = {
                        "ms_per_clip": t.median_ms, "spread": t.spread_ms, "window_s": f / 100}
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu"
    return {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv), "device": name,
            "torch": torch.__version__, "repeats": repeats, "policy": whisper.AUTO_WINDOW.to_dict(),
            "lite_config": json.loads((packed / "lite" / "config.json").read_text()).get("low_rank_config"),
            "ms_per_clip": table}


def _ms(ms: float) -> str:
    return f"{ms:.2f}" if ms >= 1 else f"{ms:.3f}"


def markdown(result: dict) -> list[str]:
    lines = []
    for batch, rows in result["ms_per_clip"].items():
        lines += [f"Batch {batch}, ms per clip (speedup over the same dtype's dense, padded):", "",
                  "| model | " + " | ".join(f"{s} s" for s in SECONDS) + " |", "|---|" + "---:|" * len(SECONDS)]
        for key, cells in rows.items():
            base = rows[key.split(" / ")[0] + " / dense, padded"]
            lines.append(f"| {key} | " + " | ".join(
                f"{_ms(cells[str(s)]['ms_per_clip'])} ({base[str(s)]['ms_per_clip'] / cells[str(s)]['ms_per_clip']:.1f}x)"
                for s in SECONDS) + " |")
        lines.append("")
    return lines


def main() -> int:
    return gpu_bench_main(__doc__, "window_gpu.py", ("LITE", "the 0.7 checkpoint (benchmarks/window.py's runs/window/tiny.en-0.7)"),
                          pack, run, markdown, repeats=100, batches="1,16,128")


if __name__ == "__main__":
    sys.exit(main())
