"""Per-operator time of exported encoder graphs (ONNX Runtime profiling), to see where int8 time goes.

    python research/decoding/onnx_profile.py DIR [DIR ...] [--batch 1] [--runs 5]

Prints, per graph, milliseconds per 30 s window by operator type (after ONNX Runtime's own fusions),
averaged over the profiled runs (the warm-up run included).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from liteasr.runtime.layout import ENCODER
from liteasr.runtime.onnx_model import session


def op_times(directory: Path, batch: int, runs: int) -> dict[str, float]:
    """Milliseconds per window per operator type, averaged over `runs` runs after one warm-up."""
    with tempfile.TemporaryDirectory() as tmp:
        s = session(directory / ENCODER, torch.get_num_threads(), profile=f"{tmp}/prof")
        shape = [batch, *[d if isinstance(d, int) else 1 for d in s.get_inputs()[0].shape[1:]]]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for _ in range(runs + 1):
            s.run(None, {"input_features": x})
        events = json.loads(Path(s.end_profiling()).read_text())
    totals: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            totals[e["args"]["op_name"]] += e["dur"] / 1e3
    # the first run is warm-up: scale the sum to one run and one window
    return {op: ms / (runs + 1) / batch for op, ms in sorted(totals.items(), key=lambda kv: -kv[1])}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dirs", nargs="+", type=Path)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    tables = {d.name: op_times(d, args.batch, args.runs) for d in args.dirs}
    ops = sorted({op for t in tables.values() for op in t}, key=lambda op: -max(t.get(op, 0) for t in tables.values()))
    print(f"| op (ms / window, batch {args.batch}) | " + " | ".join(tables) + " |")
    print("|---|" + "---:|" * len(tables))
    for op in ops:
        print(f"| {op} | " + " | ".join(f"{t.get(op, 0):.1f}" for t in tables.values()) + " |")
    print("| total | " + " | ".join(f"{sum(t.values()):.1f}" for t in tables.values()) + " |")


if __name__ == "__main__":
    main()
