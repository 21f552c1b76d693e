"""How far healing goes when steps are cheap: the same `liteasr.refine.heal`, run on a CUDA machine
for tens of times the steps a 2-core CPU affords, then evaluated here like every other checkpoint.

    python research/healing/heal_gpu.py pack LITE [LITE ...] BUNDLE  # here: what the GPU machine needs (< 64 MiB)
    python research/healing/heal_gpu.py run BUNDLE OUT              # there: every variant from every LITE start
    python research/healing/heal_gpu.py unpack OUT WORK             # here: WORK/gpuheal<V>-<size> checkpoints
    python research/healing/refine_eval.py --samples 100 --methods pca gpuheal1 ...

`run --processes 6` runs six variants at once, sharing the GPU.

The bundle holds the dense encoder of tiny.en and LITE's encoder in fp16 (the CTranslate2 originals are
fp16 already; only LITE's factors are rounded, and `unpack` starts from the same rounding), the model
configs and processor files, and the healing audio (default: librispeech_calib, 128 speakers, none in any
evaluation set).
The decoder is not shipped: these variants heal on the encoder-output loss only (`kl_weight=0`), which
needs no transcripts. Each variant's healed weights come back as fp16 differences from its start.

A call to the GPU machine carries at most 64 MiB: `pack` moves the audio that does not fit into
BUNDLE-extra. Carry that in a first call and copy it to /tmp there, then carry BUNDLE in a second call
(while the machine is still warm) and `run BUNDLE OUT --extra /tmp/...`: research/healing/heal_gpu_device.sh is
that second call, packing the results into the few files a call brings back.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from liteasr.models import whisper
from liteasr.calibration.calibrate import DEFAULT_PACKING
from variants import VariantConfig as HealConfig  # noqa: E402  (HealConfig and the variants measured no better)
from variants import heal_variant as heal  # noqa: E402
from liteasr.models.sources import resolve_model

FILES = ("config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json",
         "tokenizer_config.json", "configuration_lite_whisper.py", "modeling_lite_whisper.py", "liteasr.json")
MODEL_FILES = ("config.json", "configuration_lite_whisper.py", "modeling_lite_whisper.py", "liteasr.json")
# (name, config): what the GPU run tries, each from the same PCA start
VARIANTS = {
    "1": dict(lr=3e-5, steps=300),
    "2": dict(lr=1e-4, steps=1500),
    "3": dict(lr=1e-4, steps=1500, speeds=(0.9, 1.0, 1.1)),
    "4": dict(lr=1e-4, steps=1500, speeds=(0.9, 1.0, 1.1), layernorm=True),
    "5": dict(lr=3e-4, steps=3000, speeds=(0.9, 1.0, 1.1), patience=10),
    "6": dict(lr=1e-4, steps=3000, speeds=(0.8, 0.9, 1.0, 1.1, 1.2), patience=10),
    "7": dict(lr=1e-4, steps=3000, speeds=(0.9, 1.0, 1.1), patience=10, block_epochs=0),
    "8": dict(lr=1e-4, steps=150, patience=10, block_epochs=0),
    # what 15 minutes on 2 CPU cores allow: ~12 s per step of 8 windows (tiny.en, fp32), so 70 steps,
    # or 150 steps of 4 windows
    "9": dict(lr=1e-4, steps=70, block_epochs=0),
    "10": dict(lr=1e-4, steps=150, block_epochs=0, batch_size=4),
    "11": dict(lr=2e-4, steps=70, block_epochs=0),
    # how much healing audio (issue 10 at 0.6): the default recipe (variant 10) on the first N clips of the
    # bundle, then longer; `clips` counts the bundle's clips in order (pack --more puts extra voices last)
    "12": dict(lr=1e-4, steps=150, block_epochs=0, batch_size=4, clips=200),
    "13": dict(lr=1e-4, steps=150, block_epochs=0, batch_size=4, clips=335),
    "14": dict(lr=1e-4, steps=150, block_epochs=0, batch_size=4),
    "15": dict(lr=1e-4, steps=1500, block_epochs=0, batch_size=4, clips=335, patience=10),
    "16": dict(lr=1e-4, steps=1500, block_epochs=0, batch_size=4, patience=10),
    "17": dict(lr=1e-4, steps=1500, block_epochs=0, batch_size=4, clips=200, patience=10),
    "18": dict(lr=1e-4, steps=3000, block_epochs=0, batch_size=8, patience=10),
    "19": dict(lr=1e-4, steps=500, block_epochs=0, batch_size=4),
}
# the same with other seeds (order of the healing windows, held-out split): how much of a difference is noise
VARIANTS.update({f"{v}s{seed}": dict(VARIANTS[v], seed=seed) for v in ("12", "14", "19") for seed in (1, 2)})
# one run, its weights averaged over the second half (HealConfig.average) instead of several seeds averaged
VARIANTS.update({f"{v}a": dict(VARIANTS[v], average=True) for v in ("12", "14", "19")})
# function matching (HealConfig.mix): windows mixed with other windows, targets computed on the mixture;
# 500 steps as 19, then 1500 steps (the augmentation should let longer healing pay)
VARIANTS.update({"20": dict(VARIANTS["19"], mix=0.5), "21": dict(VARIANTS["16"], mix=0.5)})
VARIANTS.update({f"{v}s{seed}": dict(VARIANTS[v], seed=seed) for v in ("20", "21") for seed in (1, 2)})
# more seeds of 19 (a soup of 6, and a second soup of 3), and 19 at twice the learning rate
VARIANTS.update({f"19s{seed}": dict(VARIANTS["19"], seed=seed) for seed in range(3, 12)})  # 9-11: the warp study
VARIANTS["22"] = dict(VARIANTS["19"], lr=2e-4)
VARIANTS.update({f"22s{seed}": dict(VARIANTS["22"], seed=seed) for seed in (1, 2)})
# 19 holding out 3% of the clips for early stopping instead of 12.5%: more clips to heal on
VARIANTS["23"] = dict(VARIANTS["19"], held_out=0.03)
VARIANTS.update({f"23s{seed}": dict(VARIANTS["23"], seed=seed) for seed in (1, 2)})
# 19 with the encoder's LayerNorms healed too, six seeds (as many as 19 has, for a paired soup of six)
VARIANTS["24"] = dict(VARIANTS["19"], layernorm=True)
VARIANTS.update({f"24s{seed}": dict(VARIANTS["24"], seed=seed) for seed in range(1, 6)})
# 19 healing on padded windows only, one clip each, as transcription sees short clips (the default `mix`
# packs every other clip with others into windows of speech only)
VARIANTS["25"] = dict(VARIANTS["19"], packing="pad")
VARIANTS.update({f"25s{seed}": dict(VARIANTS["25"], seed=seed) for seed in range(1, 6)})
# 19 with vocal tract length perturbation (HealConfig.warp): windows' frequency axes stretched by 0.9-1.1,
# the dense output on each warped window the target: voices (children's among them) the clips lack
VARIANTS["26"] = dict(VARIANTS["19"], warp=0.1)
VARIANTS["27"] = dict(VARIANTS["19"], warp=0.2)  # twice the stretch: 0.8-1.2
# twelve seeds of 26 (against twelve of 19), six of 27: intervals that resample seeds too
VARIANTS.update({f"{v}s{seed}": dict(VARIANTS[v], seed=seed) for v, n in (("26", 12), ("27", 6)) for seed in range(1, n)})
# the most healing can move: 1500 steps with the LayerNorms and the projections kept dense healing too. For the
# capacity question at 0.5 (healed on the evaluation audio itself, research/healing/heal_on.py's oracle)
VARIANTS["28"] = dict(VARIANTS["16"], layernorm=True, dense=True)
# at 0.5, where 1500 steps healed better than 500 (refine.md): seeds of it, and 3000 steps
VARIANTS["29"] = dict(VARIANTS["16"], steps=3000)
VARIANTS.update({f"{v}s{seed}": dict(VARIANTS[v], seed=seed) for v in ("16", "29") for seed in (1, 2)})


def encoder_only(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()
            if k.startswith("model.encoder.")}


def pack(args) -> None:
    bundle = Path(args.bundle)
    base_dir = resolve_model("tiny.en")  # processor files for a lite checkpoint that ships none
    teacher = encoder_only(whisper.load("tiny.en").model)
    for name, spec in (("teacher", "tiny.en"), *((f"lite/{Path(x).name}", x) for x in args.lite)):
        src, dst = resolve_model(spec), bundle / name
        dst.mkdir(parents=True, exist_ok=True)
        for f in FILES if name == "teacher" else MODEL_FILES:  # a lite start takes the teacher's processor files
            if (src / f).is_file():
                shutil.copy(src / f, dst / f)
            elif (base_dir / f).is_file() and f != "config.json":
                shutil.copy(base_dir / f, dst / f)
        weights = teacher
        if name != "teacher":  # what a lite encoder shares with the teacher travels once
            weights = {k: v for k, v in encoder_only(whisper.load(spec).model).items()
                       if k not in teacher or not torch.equal(v, teacher[k])}
        save_file(weights, dst / "model.safetensors")
    from liteasr.data.audio import draw, read_sources
    speech = read_sources(args.speech)
    clips = draw(speech, args.clips, seed=0)
    if args.more is not None:  # then the rest of --speech, then --more's voices: a variant's `clips` takes a prefix
        drawn = {c.path for c in clips}
        clips += [c for ds in speech for c in ds.clips if c.path not in drawn]
        clips += draw(read_sources(args.more), args.more_clips, seed=0) if args.more else []
    (bundle / "calib" / "audio").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, clip in enumerate(clips):
        name = f"audio/{i:04d}{clip.path.suffix}"
        shutil.copy(clip.path, bundle / "calib" / name)
        lines.append(json.dumps({"audio": name, "source": str(clip.path)}))
    (bundle / "calib" / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (bundle / "calib" / "sources.txt").write_text(" + ".join(Path(x).name for x in args.speech + (args.more or [])))
    size = lambda d: sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) / 2**20  # noqa: E731
    print(f"wrote {bundle}: {size(bundle):.1f} MiB")
    extra = Path(f"{bundle}-extra")
    audio = sorted((bundle / "calib" / "audio").iterdir())
    while audio and size(bundle) > args.split_mib:  # the last clips go first: a `clips` prefix stays in BUNDLE
        (extra / "calib" / "audio").mkdir(parents=True, exist_ok=True)
        moved = audio.pop()
        moved.rename(extra / "calib" / "audio" / moved.name)
    if extra.is_dir():
        print(f"{bundle} {size(bundle):.1f} MiB + {extra} {size(extra):.1f} MiB: carry {extra} first, copy it to "
              f"/tmp/extra, then `run {bundle} OUT --extra /tmp/extra`")


def merge_extra(bundle: Path, extra: Path | None) -> None:
    """Put back the audio that `pack` split off into BUNDLE-extra."""
    for f in sorted((extra / "calib" / "audio").iterdir()) if extra is not None and extra.is_dir() else []:
        if not (bundle / "calib" / "audio" / f.name).exists():
            shutil.copy(f, bundle / "calib" / "audio" / f.name)


def load_lite(bundle: Path, name: str, teacher, device: str) -> torch.nn.Module:
    """A lite start from the bundle: its own tensors, the rest (convolutions, positions, dense layers
    and norms the compression kept) from the teacher."""
    path = bundle / "lite" / name
    for f in set(FILES) - set(MODEL_FILES):
        if (bundle / "teacher" / f).is_file() and not (path / f).is_file():
            shutil.copy(bundle / "teacher" / f, path / f)
    own = load_file(path / "model.safetensors")
    model = whisper.load(str(path), device=device).model
    shared = teacher.model.state_dict()
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k.startswith("model.encoder."):
                v.copy_(own[k] if k in own else shared[k])
    return model


def run_parallel(args) -> None:
    """`--processes N`: the variants dealt round-robin to N processes sharing the GPU (a 4-window step of
    tiny.en leaves an H200 mostly idle), each writing its own log; then one log.json."""
    import subprocess

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    merge_extra(Path(args.bundle), Path(args.extra) if args.extra else None)  # once, before any reader starts
    smoke = [*(["--clips", str(args.clips)] if args.clips else []),
             *(["--steps", str(args.steps)] if args.steps else [])]
    groups = [args.variants[k::args.processes] for k in range(args.processes) if args.variants[k::args.processes]]
    procs = [subprocess.Popen([sys.executable, __file__, "run", args.bundle, args.out, "--variants", *g, *smoke,
                               "--log", f"log-{k}.json"]) for k, g in enumerate(groups)]
    failed = sum(p.wait() != 0 for p in procs)
    parts = sorted(out.glob("log-*.json"))
    log = {k: v for f in parts for k, v in json.loads(f.read_text()).items()}
    (out / "log.json").write_text(json.dumps(log, indent=1))
    for f in parts:
        f.unlink()
    if failed:
        raise SystemExit(f"heal_gpu.py: {failed} of {len(procs)} processes failed (the variants they finished "
                         "are in the log)")


def heal_config(variant: dict) -> HealConfig:
    """A variant's healing: the encoder-output loss alone (the bundle carries no decoder), no wall-clock
    budget, held-out checks every 25 steps."""
    return HealConfig(**dict(dict(kl_weight=0.0, minutes=None, eval_every=25, patience=6, block_epochs=4),
                             **{k: v for k, v in variant.items() if k not in ("clips", "packing")}))


def run(args) -> None:
    if args.processes > 1:
        return run_parallel(args)
    bundle, out = Path(args.bundle), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    from liteasr.data.audio import read_dataset
    merge_extra(bundle, Path(args.extra) if args.extra else None)
    clips = read_dataset(bundle / "calib").clips[:args.clips]
    teacher = whisper.load(str(bundle / "teacher"), device=device)
    log = {}
    for lite in sorted(p.name for p in (bundle / "lite").iterdir()):
        for name in args.variants:
            start = load_lite(bundle, lite, teacher, device)
            before = {k: v.detach().clone() for k, v in start.named_parameters()}
            variant = dict(VARIANTS[name], **({"steps": args.steps} if args.steps is not None else {}))
            heal_clips = clips[:variant.get("clips") or len(clips)]
            config = heal_config(variant)
            t0 = time.time()
            report = heal(teacher, start, heal_clips, config, packing=variant.get("packing", DEFAULT_PACKING),
                          progress=False)
            delta = {k: (v.detach() - before[k]).to(torch.float16).cpu().contiguous()
                     for k, v in start.named_parameters() if not torch.equal(v.detach(), before[k])}
            save_file(delta, out / f"delta-{lite}-{name}.safetensors")
            log[f"{lite}/{name}"] = {"config": variant, "summary": report.summary(), "block": report.block_loss,
                                     "e2e": report.e2e_loss, "steps": report.steps, "seconds": time.time() - t0,
                                     "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
            print(lite, name, report.summary(), flush=True)
            (out / args.log).write_text(json.dumps(log, indent=1))


def unpack(args) -> None:
    from liteasr.data.audio import audio_hash
    from liteasr.checkpoint import Provenance, save_checkpoint
    from liteasr.planning.flops import encoder_cost

    out, work = Path(args.out), Path(args.work)
    log = json.loads((out / "log.json").read_text())
    calib = Path(args.bundle) / "calib"
    extra = Path(f"{args.bundle.rstrip('/')}-extra") / "calib"
    # hashed where each clip lies, BUNDLE or BUNDLE-extra: copying them back would put BUNDLE over what the
    # next call may carry
    names = [json.loads(line)["audio"] for line in (calib / "manifest.jsonl").read_text().splitlines() if line]
    healed_on = [audio_hash(calib / n if (calib / n).is_file() else extra / n) for n in names]
    sources = (calib / "sources.txt").read_text() if (calib / "sources.txt").is_file() else "librispeech_calib"
    base_cost = encoder_cost(whisper.load("tiny.en").model)
    several = len({key.split("/")[0] for key in log}) > 1  # then names tell the starts apart
    for key in log:
        lite, name = key.split("/")
        spec = work / lite
        meta = json.loads((spec / "liteasr.json").read_text())
        loaded = whisper.load(str(spec))
        model = loaded.model
        delta = load_file(out / f"delta-{lite}-{name}.safetensors")
        with torch.no_grad():
            for k, p in model.named_parameters():
                if k.startswith("model.encoder."):
                    p.copy_(p.to(torch.float16).float())  # the start the GPU machine had
                if k in delta:
                    p.add_(delta[k].float())
        tag, size = lite.rsplit("-", 1)
        target = work / f"{args.prefix}{tag if several else ''}{name}-{size}"
        used = healed_on[:log[key]["config"].get("clips") or len(healed_on)]
        prov = Provenance(meta["base_model"], base_cost, f"{meta['calibration']}; healed on {len(used)} clips of {sources}",
                          f"{meta['method']}, healed {log[key]['config']} on {log[key]['device']}",
                          "research/healing/heal_gpu.py", sorted(set(meta["calibration_hashes"]) | set(used)))
        save_checkpoint(model, loaded.processor, target, prov, overwrite=True)
        print(f"wrote {target}: {log[key]['summary']}")


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("pack")
    p.add_argument("lite", nargs="+", help="lite checkpoints to heal, each named TAG-SIZE (e.g. runs/refine/pca-0.7)")
    p.add_argument("bundle")
    p.add_argument("--speech", nargs="+", default=["../shared/data/speech/librispeech_calib"],
                   help="where the healing clips come from (default: librispeech_calib, 128 speakers)")
    p.add_argument("--clips", type=int, help="clips drawn evenly from --speech (default: all)")
    p.add_argument("--more", nargs="*", help="after the --clips drawn: the rest of --speech, then clips of these "
                   "sources (variants with `clips` take the first N of that order)")
    p.add_argument("--more-clips", type=int, help="clips drawn evenly from --more (default: all)")
    p.add_argument("--split-mib", type=float, default=60,
                   help="audio beyond this bundle size goes to BUNDLE-extra (default 60: one call carries 64 MiB)")
    p = sub.add_parser("run")
    p.add_argument("bundle")
    p.add_argument("out")
    p.add_argument("--extra", help="the BUNDLE-extra folder of a split bundle, where the GPU machine holds it")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--clips", type=int, help="first N clips only (a smoke test)")
    p.add_argument("--steps", type=int, help="end-to-end steps for every variant (a smoke test)")
    p.add_argument("--processes", type=int, default=1, help="processes sharing the GPU, the variants dealt "
                   "round-robin (6 ran 6 variants of 500 steps in 80 s on an H200, one alone 37 s)")
    p.add_argument("--log", default="log.json", help=argparse.SUPPRESS)  # each parallel process's own
    p = sub.add_parser("unpack")
    p.add_argument("out")
    p.add_argument("work", help="where the packed lite checkpoints are, and the healed ones go")
    p.add_argument("--bundle", default=".bundle", help="the bundle packed for this run (its clips are recorded)")
    p.add_argument("--prefix", default="gpuheal", help="checkpoint names: PREFIX<V>-SIZE, or PREFIX<TAG><V>-SIZE "
                   "when the bundle held several starts TAG-SIZE")
    args = ap.parse_args()
    {"pack": pack, "run": run, "unpack": unpack}[args.verb](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
