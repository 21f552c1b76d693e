"""A bigger soup from soups already built: the weighted mean of healed checkpoints that share one start.

    python research/healing/soup.py runs/refine/cpuvoices575-0.6=3 runs/refine/cpusoup5x300-0.6=5 -o OUT

Each CHECKPOINT=W is a `compress --heal-seeds W` result (a mean of W runs), so the output is the mean of all
the runs. Averaging is only meaningful between checkpoints healed from the same factors, so this checks
what it can: the same rank plan, the same calibration clips, and every tensor healing does not touch
(the convolutions, positions and the whole decoder) bitwise equal. The first checkpoint's other files are
copied.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from liteasr.atomic import atomic_dir

WEIGHTS = "model.safetensors"


def parse(spec: str) -> tuple[Path, float]:
    path, _, weight = spec.rpartition("=")
    if not path:
        return Path(spec), 1.0
    try:
        return Path(path), float(weight)
    except ValueError:
        sys.exit(f"soup.py: {spec}: the weight after '=' must be a number (the runs that soup averaged)")


def same_start(paths: list[Path], tensors: list[dict[str, torch.Tensor]]) -> str | None:
    """Why these checkpoints cannot be averaged, or None."""
    meta = [json.loads((p / "liteasr.json").read_text()) for p in paths]
    configs = [json.loads((p / "config.json").read_text()).get("low_rank_config") for p in paths]
    for p, m, c, t in zip(paths[1:], meta[1:], configs[1:], tensors[1:]):
        if c != configs[0]:
            return f"{p} has other ranks than {paths[0]}"
        if m.get("calibration_hashes") != meta[0].get("calibration_hashes"):
            return f"{p} was calibrated on other clips than {paths[0]}"
        if t.keys() != tensors[0].keys():
            return f"{p} holds other tensors than {paths[0]}"
        for name, value in t.items():
            # healing moves only the encoder layers' projections and LayerNorms (--heal-dense, --heal-layernorm)
            # and the final LayerNorm: the convolutions, positions and the decoder must be the start's
            healed = "encoder.layers." in name or "encoder.layer_norm." in name
            if not healed and not torch.equal(value, tensors[0][name]):
                return f"{p} differs from {paths[0]} in {name}, which healing does not change"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT[=W]")
    ap.add_argument("--output", "-o", required=True)
    args = ap.parse_args()
    specs = [parse(s) for s in args.checkpoints]
    paths, weights = [p for p, _ in specs], [w for _, w in specs]
    if len(paths) < 2 or min(weights) <= 0:
        sys.exit("soup.py: give two or more checkpoints, each with a positive weight")
    if Path(args.output).exists():
        sys.exit(f"soup.py: {args.output} already exists")
    for p in paths:
        if not all((p / f).is_file() for f in (WEIGHTS, "liteasr.json", "config.json")):
            sys.exit(f"soup.py: {p} is not a liteasr checkpoint (no {WEIGHTS}, liteasr.json and config.json)")
    tensors = [load_file(str(p / WEIGHTS)) for p in paths]
    problem = same_start(paths, tensors)
    if problem:
        sys.exit(f"soup.py: {problem}")
    total = sum(weights)
    mean = {name: (sum(w * t[name].double() for w, t in zip(weights, tensors)) / total).to(value.dtype)
            for name, value in tensors[0].items()}
    with atomic_dir(args.output) as tmp:
        for f in paths[0].iterdir():
            if f.is_file() and f.name != WEIGHTS:
                shutil.copy2(f, tmp / f.name)
        meta = json.loads((tmp / "liteasr.json").read_text())
        meta["method"] += "; soup of " + " + ".join(f"{p} (weight {w:g})" for p, w in specs)
        meta["command"] = "python research/healing/soup.py " + " ".join(args.checkpoints) + f" -o {args.output}"
        (tmp / "liteasr.json").write_text(json.dumps(meta, indent=1))
        save_file(mean, str(tmp / WEIGHTS), metadata={"format": "pt"})
    print(f"wrote {args.output}: the mean of {len(paths)} checkpoints, weights {', '.join(f'{w:g}' for w in weights)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
