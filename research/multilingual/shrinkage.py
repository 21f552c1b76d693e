"""Do directions that do not depend on the calibration's language keep unheard languages better?

    python research/multilingual/shrinkage.py [--alphas 0 0.05 0.2 0.5 1] [--clips 48] [--probe-clips 24]
        [--json research/multilingual/shrinkage.json]

subspace.py found that the factors of a multilingual model lose a language the calibration did not hear because
the calibration's principal directions miss what it uses. A prior that needs no audio: if every input direction
were equally likely, a projection's output covariance would be W Wᵀ. Shrinking the calibration's covariance toward
it, C_α = (1 - α) C / tr C + α W Wᵀ / tr(W Wᵀ), trades the calibration's directions for the weight's own. For each
α this measures, with the ranks of the α = 0 plan held fixed (`normalized` allocation at --target), every probe
language's error energy relative to its own variance and its floor (as subspace.py does). α = 1 is plain weight SVD.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import multilingual_splits as splits, speech_or_exit  # noqa: E402
from subspace import probe_sets, residual  # noqa: E402

from liteasr.calibration.calibrate import calibrate  # noqa: E402
from liteasr.data.audio import draw, read_sources  # noqa: E402
from liteasr.factorize.compress import spectra, target_plan  # noqa: E402
from liteasr.models import whisper  # noqa: E402
from liteasr.planning.allocate import Budget  # noqa: E402


def shrunk_spectrum(covariance: torch.Tensor, weight: torch.Tensor, alpha: float):
    """Eigen-decomposition (descending) of (1 - α) C / tr C + α W Wᵀ / tr(W Wᵀ)."""
    w = weight.detach().double()
    gram = w @ w.T
    mixed = (1 - alpha) * covariance / torch.trace(covariance) + alpha * gram / torch.trace(gram)
    values, vectors = torch.linalg.eigh(mixed)
    return values.flip(0), vectors.flip(1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", type=float, default=0.6)
    p.add_argument("--alphas", type=float, nargs="+", default=[0, 0.05, 0.2, 0.5, 1])
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--probe-clips", type=int, default=24)
    p.add_argument("--work", default="runs/multilingual")
    p.add_argument("--json", default="research/multilingual/shrinkage.json")
    args = p.parse_args()
    speech, started = speech_or_exit(), time.time()
    split = splits(speech, Path(args.work))
    calibration = [str(speech / "librispeech_calib"), str(split["speechocean_calib"]), str(split["nemo_pl_calib_half"])]
    probes = probe_sets(speech, split)
    loaded = whisper.load("base")
    linears = whisper.encoder_linears(loaded.model)
    cstats = calibrate(loaded, draw(read_sources(calibration), args.clips, seed=0))
    probe_stats = {name: calibrate(loaded, draw(read_sources(src), args.probe_clips, seed=0))
                   for name, src in probes.items()}
    eig = spectra(cstats, progress=False)
    plan = target_plan(loaded, cstats, eig, Budget("params", args.target), "normalized", progress=False)
    ranks = {k: r.rank for k, r in plan.layers.items() if r.rank is not None}
    own = {pname: spectra(pstats, progress=False) for pname, pstats in probe_stats.items()}
    out = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "target": args.target,
           "calibration": calibration, "probes": probes, "ranks": ranks, "results": {}}
    for alpha in args.alphas:
        directions = {k: shrunk_spectrum(cstats.layers[k].covariance, linears[k].weight, alpha) for k in ranks}
        rows = {}
        for pname, pstats in probe_stats.items():
            weights = {k: torch.trace(pstats.layers[k].covariance).item() for k in ranks}
            error = sum(weights[k] * residual(cstats.layers[k], directions[k], r, pstats.layers[k])
                        for k, r in ranks.items()) / sum(weights.values())
            floor = sum(weights[k] * residual(pstats.layers[k], own[pname][k], r, pstats.layers[k])
                        for k, r in ranks.items()) / sum(weights.values())
            rows[pname] = {"error": error, "floor": floor}
            print(f"alpha {alpha:<5} {pname:34} error {error:.4f}  floor {floor:.4f}  ratio {error / floor:.2f}",
                  flush=True)
        out["results"][str(alpha)] = rows
    out["minutes"] = (time.time() - started) / 60
    Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
