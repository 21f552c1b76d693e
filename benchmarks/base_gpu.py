"""Issue 34's GPU rows: encoder ms per 30 s window on a GPU, fp16 (and fp32), batch 1 and 8, for dense base
beside every compression of benchmarks/base.py's sweep, and for large-v3 shapes dense beside lite ranks (those of
efficient-speech/lite-whisper-large-v3 readable offline, benchmarks/_common.LARGE_V3_RANKS), with each model's
FLOP bound; the paper reports 1.29-1.57x encoder speed-ups for its large-v3 checkpoints on a GPU.

    python benchmarks/base_gpu.py run benchmarks/base_gpu [--json OUT] [--device cuda]   # on the GPU machine
    python benchmarks/base_gpu.py table benchmarks/base_gpu_h100.json         # its table again, from the JSON
    python benchmarks/base_gpu.py pack runs/base/sweep benchmarks/base_gpu    # here, after a new benchmarks/base.py

benchmarks/base_gpu holds the packed configs (32 kB, committed, so a lent GPU needs no sweep built first): the ranks
and attention modes of benchmarks/base.json's models, packed from `liteasr sweep base` with its calibration and
`--refine none` (healing leaves the shapes as they are; every model's encoder parameters and GFLOPs equal
base.json's to the last digit), and large-v3's. A CPU smoke run: `run benchmarks/base_gpu --device cpu --repeats 2
--batches 1` (large-v3 in fp32 takes minutes there).

The lent machine has torch and transformers but not soundfile and soxr (liteasr.models imports them); carry their
wheels for its Python 3.12 (`.whl`, git-ignored through .git/info/exclude):

    pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 -d .whl soundfile soxr cffi pycparser
    # the device tool's run, carry [".whl"]:
    pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site:src \
        python3 benchmarks/base_gpu.py run benchmarks/base_gpu --json $OUT/base_gpu.json --markdown $OUT/base_gpu.md

As benchmarks/window_gpu.py: encoder time depends on the shapes (the ranks and attention modes in config.json),
not on the weight values, so only config files travel and the weights are random. Models of one family run
interleaved (bench.encoder_latency, as transcription runs the encoder), so compare within a family and dtype.
"""

import platform
import shutil
import sys
import time
from pathlib import Path

import torch
from _common import gpu_bench_main, large_v3_shapes
from window_gpu import build

from liteasr.evaluation.bench import encoder_latency
from liteasr.models.sources import model_kind, resolve_model
from liteasr.planning.flops import best_attention_modes, encoder_cost

DTYPES = {"fp16": torch.float16, "fp32": torch.float32}
PAPER = "1.29-1.57x"  # the paper's GPU encoder speed-ups for its large-v3 checkpoints (issue 34)


def pack(sweep: Path, out: Path) -> None:
    """out/base/dense (base's config), out/base/<point> (each lite checkpoint of the sweep), out/large-v3/{dense,lite}."""
    if not (sweep / "sweep.json").is_file():
        sys.exit(f"base_gpu.py pack: {sweep} is not a sweep folder (run benchmarks/base.py first)")
    shutil.rmtree(out, ignore_errors=True)
    models = {"base/dense": resolve_model("base")}
    models |= {f"base/{d.name}": d for d in sorted(sweep.iterdir())
               if (d / "config.json").is_file() and model_kind(d) == "lite-whisper"}
    for name, folder in models.items():
        (out / name).mkdir(parents=True)
        shutil.copy(folder / "config.json", out / name / "config.json")
    dense, lite = large_v3_shapes()
    with torch.device("meta"):  # shapes only: the attention modes with the fewest FLOPs, as compress records them
        from liteasr.models.hf.modeling_lite_whisper import LiteWhisperForConditionalGeneration

        lite.attention_modes = best_attention_modes(LiteWhisperForConditionalGeneration(lite))
    for name, config in (("large-v3/dense", dense), ("large-v3/lite", lite)):
        (out / name).mkdir(parents=True)
        config.to_json_file(out / name / "config.json")
    print(f"packed {len(models) + 2} configs in {out}: carry it to the GPU machine")


def family_models(packed: Path, family: str) -> list[Path]:
    """Dense first (the reference of its rows), then the lite configs in name order."""
    folders = sorted(p for p in (packed / family).iterdir() if (p / "config.json").is_file())
    return sorted(folders, key=lambda p: p.name != "dense")


def run(packed: Path, device: str, repeats: int, batches: list[int]) -> dict:
    families = {}
    for family in sorted(p.name for p in packed.iterdir() if p.is_dir()):
        folders = family_models(packed, family)
        rows = {f.name: {"gflops": None, "ms": {}} for f in folders}
        for dname, dtype in DTYPES.items():
            if device == "cpu" and dtype == torch.float16:
                continue  # a CPU smoke run: fp16 convolutions are not what a CPU runs
            models = [build(f, device, dtype) for f in folders]
            for f, model in zip(folders, models):
                rows[f.name]["gflops"] = encoder_cost(model).flops / 1e9
            for batch in batches:
                timings = encoder_latency(models, batch_size=batch, repeats=repeats, warmup=5)
                for f, t in zip(folders, timings):
                    rows[f.name]["ms"].setdefault(dname, {})[str(batch)] = {"median": t.median_ms, "spread": t.spread_ms}
            del models, model  # the next dtype's copies need the memory
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        families[family] = rows
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu"
    return {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv), "device": name,
            "torch": torch.__version__, "repeats": repeats, "window_s": 30, "paper_large_v3_speedup": PAPER,
            "families": families}


def markdown(result: dict) -> list[str]:
    lines = [f"{result['device']}, torch {result['torch']}, {result['repeats']} interleaved runs per cell; encoder ms "
             "per 30 s window (speed-up over the family's dense model in the same dtype and batch)", ""]
    for family, rows in result["families"].items():
        dense = rows["dense"]
        cells = [(d, b) for d, per in dense["ms"].items() for b in per]
        lines += [f"{family}:", "", "| model | GFLOPs / window | FLOP bound | " +
                  " | ".join(f"{d} b{b}" for d, b in cells) + " |", "|---|---:|---:|" + "---:|" * len(cells)]
        for label, row in rows.items():
            out = [label, f"{row['gflops']:.1f}", f"{dense['gflops'] / row['gflops']:.2f}x"]
            for d, b in cells:
                ms, ref = row["ms"][d][b]["median"], dense["ms"][d][b]["median"]
                out.append(f"{ms:.2f} ± {row['ms'][d][b]['spread']:.2f} ({ref / ms:.2f}x)")
            lines.append("| " + " | ".join(out) + " |")
        lines.append("")
    lines.append(f"The paper's large-v3 checkpoints: {result['paper_large_v3_speedup']} on a GPU.")
    return lines


def main() -> int:
    return gpu_bench_main(__doc__, "base_gpu.py", ("SWEEP", "benchmarks/base.py's sweep folder (runs/base/sweep)"),
                          pack, run, markdown, repeats=50, batches="1,8")


if __name__ == "__main__":
    sys.exit(main())
