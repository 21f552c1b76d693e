"""Where a compressed base loses the languages its calibration did not hear: allocation, factors or healing?

    python research/multilingual/where.py [--sweep runs/base/sweep] [--target 0.7] [--probe-clips 24] [--hear]
        [--add LABEL=SOURCE[,SOURCE...] ...] [--json research/multilingual/where.json]

benchmarks/base.py's compression at --target (its calibration statistics, its rank plan and its healed model,
from `--sweep`: English and Polish calibration, 256 clips) taken apart into the steps that made it:
- `normalized`: PCA factors, ranks from the calibration's spectra alone (no damage probes, no healing);
- `PCA factors`: the same factors with the product's ranks (the `encoder` damage allocation's plan);
- `healed`: those factors healed on the calibration audio (the benchmark's model).
- with `--hear`, `heard it+de`: the PCA factors of the same plan from the calibration with Italian and German
  added (emovo_it's speaker f1, emodb_de's 03 and 08, every clip), and Italian and German probed on their other
  speakers only (m1; 09, 10, 11), for every model: how much of the gap hearing the language closes.
- with `--add LABEL=SOURCE,...`: the PCA factors of the same plan from the calibration with every clip of those
  sources added (e.g. synthetic speech), under LABEL.
No decoding: for every probe set (speakers none of the calibrations hold; Italian, German and Spanish never
calibrated) the relative error of the encoder output against dense base's on the same clips, over the frames
that hold audio (padding excluded): sum ||y - y_dense||² / sum ||y_dense - mean||², the healing loss. A step
that lowers the error on the heard languages and not on the unheard ones is where they are lost.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import (base_sweep_point, multilingual_splits as splits, rows as manifest_rows,  # noqa: E402
                     speech_or_exit, write_manifest)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from subspace import probe_sets  # noqa: E402

from liteasr import CompressConfig, compress  # noqa: E402
from liteasr.calibration.calibrate import calibrate  # noqa: E402
from liteasr.calibration.stats import CovarianceStats  # noqa: E402
from liteasr.data.audio import draw, load_audio, read_sources  # noqa: E402
from liteasr.models import whisper  # noqa: E402
from liteasr.planning.plan import RankPlan  # noqa: E402

FRAMES_PER_SECOND = 50  # encoder output frames per second of audio
HEARD_SPEAKERS = {"emovo_it": {"f1"}, "emodb_de": {"03", "08"}}  # calibrated on with --hear; the others probed


def speaker_split(speech: Path, work: Path, name: str) -> tuple[Path, Path]:
    """(calibration, probe) manifests of `name` split by HEARD_SPEAKERS, written under `work`."""
    rows = manifest_rows(speech / name)
    heard = [r for r in rows if r["speaker"] in HEARD_SPEAKERS[name]]
    other = [r for r in rows if r["speaker"] not in HEARD_SPEAKERS[name]]
    return (write_manifest(heard, work / f"{name}_heard", speech / name),
            write_manifest(other, work / f"{name}_other", speech / name))


def encoder_errors(dense: whisper.LoadedModel, models: dict[str, torch.nn.Module], audios) -> dict[str, float]:
    """Each model's relative encoder-output error against the dense one's, on the frames that hold audio (the
    dense output computed once per clip)."""
    err, spread = dict.fromkeys(models, 0.0), 0.0
    for audio in audios:
        feats = dense.features([audio])
        ref = whisper.encoder_output(dense.model, feats)
        n = min(ref.shape[1], max(1, round(len(audio) / 16000 * FRAMES_PER_SECOND)))
        ref = ref[0, :n].double()
        spread += float((ref - ref.mean(0)).pow(2).sum())
        for name, model in models.items():
            err[name] += float((whisper.encoder_output(model, feats)[0, :n].double() - ref).pow(2).sum())
    return {name: e / spread for name, e in err.items()}


def errors_on(dense: whisper.LoadedModel, models: dict[str, torch.nn.Module], sources: dict[str, list[str]],
              clips: int) -> dict[str, dict[str, float]]:
    """encoder_errors on `clips` clips (seed 0) of each probe set (label -> DATA sources), printed as they come."""
    rows = {}
    for label, data in sources.items():
        audios = [load_audio(c) for c in draw(read_sources(data), clips, seed=0)]
        rows[label] = encoder_errors(dense, models, audios)
        print(f"{label:34}", "  ".join(f"{name} {e:.4f}" for name, e in rows[label].items()), flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", type=Path, default=Path("runs/base/sweep"), help="benchmarks/base.py's sweep folder")
    p.add_argument("--target", type=float, default=0.7)
    p.add_argument("--probe-clips", type=int, default=24)
    p.add_argument("--work", type=Path, default=Path("runs/base"), help="benchmarks/base.py's work folder")
    p.add_argument("--hear", action="store_true", help="add the factors of a calibration that hears Italian and German")
    p.add_argument("--add", action="append", default=[], metavar="LABEL=SOURCE[,SOURCE...]",
                   help="also the PCA factors of the same plan with every clip of these sources in the calibration")
    p.add_argument("--json", type=Path, default=Path("research/multilingual/where.json"))
    args = p.parse_args()
    if any("=" not in a for a in args.add):
        p.error("--add takes LABEL=SOURCE[,SOURCE...]")
    speech, started = speech_or_exit(), time.time()
    healed_dir = base_sweep_point(args.sweep, args.target, "where.py")
    dense = whisper.load("base")
    stats = CovarianceStats.load(args.sweep / "stats.safetensors")
    models = {
        "normalized": CompressConfig(target_params=args.target, allocation="normalized", refine="none"),
        "PCA factors": CompressConfig(plan=RankPlan.load(healed_dir / "plan.json"), refine="none"),
    }
    built = {name: compress(dense, stats, config).model for name, config in models.items()}
    built["healed"] = whisper.load(str(healed_dir)).model
    sources = probe_sets(speech, splits(speech, args.work))
    if args.hear:
        split = {name: speaker_split(speech, args.work, name) for name in HEARD_SPEAKERS}
        extra = draw(read_sources([str(heard) for heard, _ in split.values()]), None, seed=0)
        heard_stats = stats.merge(calibrate(dense, extra))
        built["heard it+de"] = compress(dense, heard_stats, models["PCA factors"]).model
        del sources["it (emovo_it)"], sources["de (emodb_de)"]
        sources.update({"it (emovo_it, speaker m1)": [str(split["emovo_it"][1])],
                        "de (emodb_de, speakers 09 10 11)": [str(split["emodb_de"][1])]})
    for label, names in (a.split("=", 1) for a in args.add):
        extra = draw(read_sources(names.split(",")), None, seed=0)
        built[label] = compress(dense, stats.merge(calibrate(dense, extra)), models["PCA factors"]).model
    rows = errors_on(dense, built, sources, args.probe_clips)
    out = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "target": args.target,
           "sweep": str(args.sweep), "probe_clips": args.probe_clips, "hear": args.hear, "add": args.add, "errors": rows,
           "minutes": (time.time() - started) / 60}
    args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
