"""Ranks for the languages a calibration does not hear: damage measured across languages (multilingual base).

    python research/allocation/heldout_language.py [--target 0.7] [--probe-clips 24] [--out runs/base/heldout]
        [--json research/allocation/heldout_language.json]

The `encoder` damage model measures each projection's truncation with factors from the whole calibration on
probe clips of the same calibration: in-sample, every language in it. A language the calibration does not hear
loses at the same ranks 3-5 times what a heard one loses (research/multilingual/multilingual.md, "Where the loss
of unheard languages sits"), and that excess varies by projection: per projection, Polish's excess over its
floor under English-only factors follows Italian's and German's under English + Polish factors (correlation 0.98
and 0.97 over base's 20 factored projections, from subspace.json). So the calibration can tell which projections'
directions do not carry over to a language they were not fitted on, without audio of that language: fit each
projection's factors on every calibration language but one, measure the damage on probes of the one left out,
and average over the languages left out. Ranks then go where directions are language-specific.

This script, on benchmarks/base.py's calibration (256 clips, seed 0: English, librispeech_calib and half of
speechocean's speakers; Polish, nemo_pl_calib of two speakers) and its 8 probe clips (4 English, 4 Polish):
- calibrates on all clips (the product's statistics) and on each language's clips alone;
- measures the product's `encoder` damage table (the control) and the held-out-language table (the variant:
  English probes under Polish-only factors, Polish probes under English-only factors, averaged), each at the
  product's probe ranks and interpolated in the whole calibration's discarded variance;
- allocates --target with each table and builds both models with the same PCA factors (the whole calibration's;
  no healing), saved under --out for research/healing/base_voices.py to score in WER;
- prints and records the ranks that moved and, without decoding, each model's relative encoder-output error
  against dense base on --probe-clips clips of each of base.py's evaluation sets (where.py's measure).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import add_base_study_args, base_calibration, multilingual_splits, speech_or_exit  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "multilingual"))
from subspace import probe_sets  # noqa: E402
from where import errors_on  # noqa: E402

from liteasr.calibration.calibrate import calibrate  # noqa: E402
from liteasr.data.audio import load_audio, windows  # noqa: E402
from liteasr.factorize.compress import measure_damage, probe_selection, shapes, spectra  # noqa: E402
from liteasr.factorize.lowrank import factorize  # noqa: E402
from liteasr.models import whisper  # noqa: E402
from liteasr.pipeline import CompressConfig, calibration_clips, compress  # noqa: E402
from liteasr.planning.allocate import Budget, allocate  # noqa: E402
from liteasr.planning.damage import TruncationProbe, candidates, interpolate, probe_ranks  # noqa: E402
from liteasr.planning.flops import encoder_cost  # noqa: E402

PROBE_POINTS = 6  # the product's ranks probed per projection (factorize.measure_damage)


def heldout_table(dense, clips, eig, probe_clips: int = 8, multiple: int = 16) -> tuple[dict, dict]:
    """Damage of every candidate rank, each language's probes under factors fitted on the other languages'
    clips alone, averaged over the languages left out (clips of no stated language count as one language).
    Also returns each left-out language's own table."""
    options = {k: candidates(*s, multiple) for k, s in shapes(dense.model).items()}
    pieces = [(w, c.language) for c in probe_selection(clips, probe_clips) for w in windows(load_audio(c))][:probe_clips]
    languages = sorted({lang for _, lang in pieces}, key=str)
    linears = whisper.encoder_linears(dense.model)
    tables = {}
    for held in languages:
        rest = [c for c in clips if c.language != held]
        stats = calibrate(dense, rest, progress=False)
        fitted = spectra(stats, progress=False)
        probe = TruncationProbe(dense, [w for w, lang in pieces if lang == held], "encoder")
        measured = {}
        for key in options:
            ranks = probe_ranks(options[key], PROBE_POINTS)
            measured[key] = {r: probe.damage(key, factorize(linears[key], stats.layers[key].mean, fitted[key][1], r))
                             for r in ranks}
        tables[str(held)] = {key: interpolate(eig[key][0], measured[key], options[key]) for key in options}
        print(f"held out {held}: {len(rest)} calibration clips, "
              f"{sum(lang == held for _, lang in pieces)} probe windows", flush=True)
    mean = {key: {r: float(np.mean([t[key][r] for t in tables.values()])) for r in options[key]} for key in options}
    return mean, tables


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_base_study_args(p, sweep=False)
    p.add_argument("--target", type=float, default=0.7)
    p.add_argument("--probe-clips", type=int, default=24, help="clips per evaluation set for the encoder-output error")
    p.add_argument("--out", type=Path, default=Path("runs/base/heldout"))
    p.add_argument("--json", type=Path, default=Path("research/allocation/heldout_language.json"))
    args = p.parse_args()
    speech, started = speech_or_exit(), time.time()
    split = multilingual_splits(speech, args.work)
    clips = calibration_clips(base_calibration(speech, split), args.clips, seed=0)
    dense = whisper.load("base")
    stats = calibrate(dense, clips)
    eig = spectra(stats)
    budget = Budget("params", args.target)
    base = encoder_cost(dense.model)
    fixed = base.attention_flops + base.conv_flops
    frames = dense.model.config.max_source_positions
    tables = {"encoder": measure_damage(dense, stats, eig, "encoder", clips)}
    tables["held-out language"], per_language = heldout_table(dense, clips, eig)
    plans = {name: allocate(t, shapes(dense.model), budget, eig, name, frames=frames, fixed_flops=fixed)
             for name, t in tables.items()}
    models = {}
    for name, plan in plans.items():
        lite = compress(dense, stats, CompressConfig(plan=plan, refine="none"))
        folder = args.out / f"{name.replace(' ', '-')}-{args.target:g}"
        lite.save(folder, overwrite=True, command="python " + " ".join(sys.argv))
        models[name] = lite.model
        print(f"{name}: {lite.summary()} -> {folder}", flush=True)
    ranks = {name: {k: layer.rank for k, layer in plan.layers.items()} for name, plan in plans.items()}
    moved = {k: [ranks["encoder"][k], ranks["held-out language"][k]] for k in ranks["encoder"]
             if ranks["encoder"][k] != ranks["held-out language"][k]}
    print("ranks moved (encoder -> held-out language):", moved, flush=True)
    errors = errors_on(dense, models, probe_sets(speech, split), args.probe_clips)
    out = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "target": args.target,
           "calibration_clips": len(clips), "ranks": ranks, "moved": moved, "errors": errors,
           "damage": {name: {k: {str(r): v for r, v in t.items()} for k, t in table.items()}
                      for name, table in {**tables, **{f"held out {h}": t for h, t in per_language.items()}}.items()},
           "models": {name: str(args.out / f"{name.replace(' ', '-')}-{args.target:g}") for name in plans},
           "minutes": (time.time() - started) / 60}
    args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
