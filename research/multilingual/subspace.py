"""Where a compressed base loses the languages its calibration did not hear: a diagnosis of the factors.

    python research/multilingual/subspace.py [--target 0.6] [--clips 64] [--probe-clips 32]
        [--json research/multilingual/subspace.json]

A factored projection keeps its outputs' mean and top-k principal directions from the calibration audio:
y ≈ mu + V_k V_kᵀ (y - mu). On audio of language X its error energy is, exactly from X's statistics
(no decoding, no compressed model needed), trace(P⊥ (C_X + (mu_X - mu)(mu_X - mu)ᵀ)) with P⊥ = I - V_k V_kᵀ,
relative to X's own variance trace(C_X). This script measures it for every encoder projection of base,
with the ranks of one plan (`normalized` allocation at --target: no probing, so the ranks depend only on
the calibration's spectra), for
- calibrations: English (librispeech_calib + half of speechocean's speakers) and English + Polish (the
  same, plus nemo_pl_calib of IC0 and KS0), `--clips` clips each (seed 0);
- probes, speakers disjoint from both calibrations: English (librispeech_other, the other speechocean
  speakers), Polish (nemo_pl of MK0 and SM0), Italian, German, Spanish; `--probe-clips` each;
- and, as the floor, each probe set's own top-k directions at the same ranks (what k directions could
  keep of that language at best).
If an unheard language's error is far above its floor while a heard one's is near it, the loss is in the
factors' directions (the calibration's subspace misses that language), not in the ranks or the model.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import multilingual_splits as splits, speech_or_exit  # noqa: E402

from liteasr.calibration.calibrate import calibrate  # noqa: E402
from liteasr.data.audio import draw, read_sources  # noqa: E402
from liteasr.factorize.compress import spectra, target_plan  # noqa: E402
from liteasr.models import whisper  # noqa: E402
from liteasr.planning.allocate import Budget  # noqa: E402


def residual(layer_calib, eig, rank: int, layer_probe) -> float:
    """Relative error energy, on the probe's outputs, of the calibration's rank-`rank` affine projection."""
    v = eig[1][:, :rank]
    shift = layer_probe.mean - layer_calib.mean
    second = layer_probe.covariance + torch.outer(shift, shift)
    kept = torch.trace(v.T @ second @ v)
    return float((torch.trace(second) - kept) / torch.trace(layer_probe.covariance))


def probe_sets(speech: Path, split: dict) -> dict[str, list[str]]:
    """The probe languages, speakers disjoint from every calibration here."""
    return {"en (librispeech_other)": [str(speech / "librispeech_other")],
            "en (speechocean, other speakers)": [str(split["speechocean_heldout"])],
            "pl (nemo_pl, other speakers)": [str(split["nemo_pl_heldout"])],
            "it (emovo_it)": [str(speech / "emovo_it")], "de (emodb_de)": [str(speech / "emodb_de")],
            "es (css10_es)": [str(speech / "css10_es")]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", type=float, default=0.6)
    p.add_argument("--clips", type=int, default=64)
    p.add_argument("--probe-clips", type=int, default=32)
    p.add_argument("--work", default="runs/multilingual")
    p.add_argument("--json", default="research/multilingual/subspace.json")
    p.add_argument("--synthetic", nargs="*", default=[], metavar="DIR",
                   help="more calibrations: English + Polish + each of these (synth_languages.py folders)")
    args = p.parse_args()
    speech, started = speech_or_exit(), time.time()
    split = splits(speech, Path(args.work))
    english = [str(speech / "librispeech_calib"), str(split["speechocean_calib"])]
    calibrations = {"en": english, "en+pl": english + [str(split["nemo_pl_calib_half"])]}
    for folder in args.synthetic:
        calibrations[f"en+pl+{Path(folder).name}"] = calibrations["en+pl"] + [folder]
    probes = probe_sets(speech, split)
    loaded = whisper.load("base")
    stats = {name: calibrate(loaded, draw(read_sources(src), args.clips, seed=0)) for name, src in calibrations.items()}
    probe_stats = {name: calibrate(loaded, draw(read_sources(src), args.probe_clips, seed=0))
                   for name, src in probes.items()}
    out = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "target": args.target,
           "calibrations": calibrations, "probes": probes, "results": {}}
    for cname, cstats in stats.items():
        eig = spectra(cstats, progress=False)
        plan = target_plan(loaded, cstats, eig, Budget("params", args.target), "normalized", progress=False)
        ranks = {k: r.rank for k, r in plan.layers.items() if r.rank is not None}
        rows = {}
        for pname, pstats in probe_stats.items():
            own = spectra(pstats, progress=False)
            per_layer = {k: (residual(cstats.layers[k], eig[k], r, pstats.layers[k]),
                             residual(pstats.layers[k], own[k], r, pstats.layers[k])) for k, r in ranks.items()}
            total = lambda i: sum(torch.trace(pstats.layers[k].covariance).item() * v[i]  # noqa: E731
                                  for k, v in per_layer.items()) / sum(torch.trace(pstats.layers[k].covariance).item()
                                                                       for k in per_layer)
            rows[pname] = {"error": total(0), "floor": total(1), "per_layer": per_layer}
            print(f"{cname:16} {pname:34} error {total(0):.4f}  floor {total(1):.4f}  ratio {total(0) / total(1):.2f}",
                  flush=True)
        out["results"][cname] = {"factored": len(ranks), "probes": rows}
    out["minutes"] = (time.time() - started) / 60
    Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
