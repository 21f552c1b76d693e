"""`liteasr` command line: compress, calibrate, transcribe, eval, bench, info, demo."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import warnings
from pathlib import Path

from .errors import UserError

# damage.DAMAGE_MODELS / DEFAULT_DAMAGE, spelled out so that parsing arguments does not import torch
DAMAGE_MODELS = ("encoder", "decoder", "sensitivity", "normalized", "variance")
DEFAULT_DAMAGE = "encoder"


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda requested but no CUDA device is available")
    return name


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def _load(args, spec=None):
    from . import whisper

    return whisper.load(spec or args.model, device=_device(args.device), dtype=_dtype(args.dtype),
                        attention=getattr(args, "attention", "auto"))


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def _clips(args, source: str, n: int | None = None, with_text: bool = False):
    """Clips of DATA, N of them chosen by --seed, every file checked before any model runs."""
    from .audio import read_dataset, sample, screen

    clips = [c for c in read_dataset(source).clips if c.text is not None or not with_text]
    good, bad = screen(sample(clips, n, getattr(args, "seed", 0)), args.on_bad_audio)
    for path, reason in bad:
        print(f"liteasr: skipped {path}: {reason}", file=sys.stderr)
    return good, bad


def _budget(args):
    from .allocate import Budget

    given = [(k, v) for k, v in (("params", args.target_params), ("flops", args.target_flops)) if v is not None]
    if len(given) > 1:
        raise UserError("give at most one of --target-params, --target-flops")
    if given and args.plan:
        raise UserError("--plan fixes the ranks; it cannot be combined with a target")
    return Budget(*given[0]) if given else None


def _write_json(path: str, data) -> None:
    from .atomic import atomic_file

    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


# --- commands ---------------------------------------------------------------------------------

def cmd_calibrate(args) -> None:
    from .atomic import check_writable
    from .calibrate import calibrate

    check_writable(args.output, args.overwrite)
    clips, _ = _clips(args, args.calibration, args.calibration_samples)
    loaded = _load(args)
    stats = calibrate(loaded, clips, batch_size=args.batch_size, packing=args.packing)
    stats.save(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: {len(stats.layers)} layers, {stats.meta['windows']} windows from {len(clips)} clips")


def cmd_compress(args) -> None:
    from .atomic import check_writable
    from .calibrate import calibrate
    from .checkpoint import Provenance, save_checkpoint
    from .compress import check_stats, compress_, spectra, target_plan, threshold_plan
    from .flops import encoder_cost
    from .plan import RankPlan, ThresholdRule
    from .stats import CovarianceStats

    if args.output is None and not args.dry_run:
        raise UserError("--output DIR is required (or --dry-run to print the rank plan only)")
    if args.output is not None:
        check_writable(args.output, args.overwrite)
    rule = ThresholdRule.parse(args.threshold, args.rank_multiple)
    if (args.calibration is None) == (args.stats is None):
        raise UserError("give exactly one of --calibration DATA or --stats FILE")
    plan = RankPlan.load(args.plan) if args.plan else None
    budget = _budget(args)
    clips, skipped = _clips(args, args.calibration, args.calibration_samples) if args.calibration else (None, [])
    loaded = _load(args)
    base = encoder_cost(loaded.model)
    if args.sequential and clips is None:
        raise UserError("--sequential needs --calibration audio")
    if clips is not None:
        stats = calibrate(loaded, clips, batch_size=args.batch_size, packing=args.packing)
        if args.save_stats:
            stats.save(args.save_stats)
        calibration = f"{len(clips)} clips of {args.calibration} (seed {args.seed}), {stats.meta['windows']} windows"
        if skipped:
            calibration += "; skipped as unreadable: " + ", ".join(str(p) for p, _ in skipped)
    else:
        stats = CovarianceStats.load(args.stats)
        calibration = f"statistics {args.stats} ({stats.meta.get('clips', '?')} clips)"
    check_stats(loaded.model, stats)
    eig = spectra(stats)
    if plan is None and budget is not None:
        plan = target_plan(loaded, stats, eig, budget, args.allocation, clips, args.rank_multiple,
                           probe_clips=args.probe_clips)
    plan = plan or threshold_plan(loaded.model, stats, rule, eig)
    if args.save_plan:
        plan.save(args.save_plan)
    if args.dry_run:
        print(plan.table())
        return
    if args.sequential:
        from .sequential import compress_sequential

        lite, stats = compress_sequential(loaded, clips, plan, args.batch_size, args.packing)
        plan.method += ", sequential calibration"
    else:
        lite = compress_(loaded.model, stats, plan, eig)
    command = "liteasr " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    save_checkpoint(lite, loaded.processor, args.output, Provenance(args.model, base, calibration, plan.method, command,
                                                                         stats.meta.get("clip_hashes", [])),
                    overwrite=args.overwrite)
    after = encoder_cost(lite)
    print(f"wrote {args.output}: encoder params {base.params:,} -> {after.params:,} ({after.params / base.params:.1%}), "
          f"GFLOPs/window {base.gflops:.2f} -> {after.gflops:.2f}")


def cmd_transcribe(args) -> None:
    from .audio import load_audio
    from .transcribe import transcribe

    from .audio import Clip, screen

    good, bad = screen([Clip(Path(p)) for p in args.audio], args.on_bad_audio)
    for path, reason in bad:
        print(f"liteasr: skipped {path}: {reason}", file=sys.stderr)
    audios = [load_audio(c.path) for c in good]
    loaded = _load(args)
    result = transcribe(loaded, audios, batch_size=args.batch_size, warmup=False)
    for path, text in zip([c.path for c in good], result.texts):
        print(f"{path}\t{text}" if len(args.audio) > 1 else text)


def cmd_info(args) -> None:
    from . import whisper
    from .flops import encoder_cost

    loaded = _load(args)
    before, after = encoder_cost(loaded.model, dense=True), encoder_cost(loaded.model)
    print(f"model: {loaded.path}")
    print("layer  q_proj  k_proj  v_proj  out_proj  fc1    fc2")
    for i, ranks in enumerate(whisper.low_rank_config(loaded.model)):
        cells = [str(ranks.get(n, "dense")) for n in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")]
        print(f"{i:<6} " + " ".join(f"{c:<7}" for c in cells))
    print(f"{'':28}{'dense':>14}{'this model':>14}{'kept':>8}")
    for label, a, b in (("encoder params", before.params, after.params),
                        ("encoder linear params", before.linear_params, after.linear_params),
                        ("GFLOPs/30 s: linear", before.linear_flops / 1e9, after.linear_flops / 1e9),
                        ("GFLOPs/30 s: attention", before.attention_flops / 1e9, after.attention_flops / 1e9),
                        ("GFLOPs/30 s: conv", before.conv_flops / 1e9, after.conv_flops / 1e9),
                        ("GFLOPs/30 s: total", before.gflops, after.gflops)):
        fmt = (lambda x: f"{x:,}") if isinstance(a, int) else (lambda x: f"{x:.2f}")
        print(f"{label:<28}{fmt(a):>14}{fmt(b):>14}{b / a:>8.1%}")


def cmd_eval(args) -> None:
    from .report import evaluate_models, print_table

    from .audio import read_dataset

    sets = []
    for source in args.data:
        ds = read_dataset(source)
        ds.clips, _ = _clips(args, source, args.samples, with_text=True)
        sets.append(ds)
    results = evaluate_models(args.models, sets, device=_device(args.device), dtype=_dtype(args.dtype),
                              batch_size=args.batch_size, latency=not args.no_latency, attention=args.attention)
    print_table(results)
    if args.json:
        _write_json(args.json, results)


def cmd_bench(args) -> None:
    from .bench import encoder_latency
    from .flops import encoder_cost

    a, b = _load(args), _load(args, args.vs)
    model, base = a.model, b.model
    t_model, t_base = encoder_latency([model, base], batch_size=args.batch_size, repeats=args.repeats)
    bound = encoder_cost(base).flops / encoder_cost(model).flops
    speedup = t_base.median_ms / t_model.median_ms
    print(f"encoder ms per 30 s window (batch {args.batch_size}, {args.repeats} interleaved runs):")
    print(f"  {args.model}: {t_model.median_ms:.1f} +/- {t_model.spread_ms:.1f}")
    print(f"  {args.vs}: {t_base.median_ms:.1f} +/- {t_base.spread_ms:.1f}")
    cb, cm = encoder_cost(base), encoder_cost(model)
    print("GFLOPs/30 s (linear / attention / conv): "
          f"{cm.linear_flops / 1e9:.2f} / {cm.attention_flops / 1e9:.2f} / {cm.conv_flops / 1e9:.2f} vs "
          f"{cb.linear_flops / 1e9:.2f} / {cb.attention_flops / 1e9:.2f} / {cb.conv_flops / 1e9:.2f}")
    print(f"speedup {speedup:.3f}x, FLOP bound {bound:.3f}x: measured = {speedup / bound:.0%} of the bound")
    report = {"encoder_ms": {"model": t_model.median_ms, "base": t_base.median_ms},
              "spread_ms": {"model": t_model.spread_ms, "base": t_base.spread_ms},
              "speedup": speedup, "flop_bound": bound, "fraction_of_bound": speedup / bound,
              "batch_size": args.batch_size}
    if args.data:
        from .audio import load_audio, read_dataset, sample
        from .bench import transcription_latency

        clips = sample(read_dataset(args.data).clips, args.samples, 0)
        audios = [load_audio(c.path) for c in clips]
        tm, tb = transcription_latency([a, b], audios, repeats=max(1, args.repeats // 5))
        print(f"full transcription of {len(clips)} clips: {tm.median_ms / 1e3:.2f} s vs {tb.median_ms / 1e3:.2f} s "
              f"(speedup {tb.median_ms / tm.median_ms:.3f}x)")
        report["transcribe_s"] = {"model": tm.median_ms / 1e3, "base": tb.median_ms / 1e3}
        report["transcribe_speedup"] = tb.median_ms / tm.median_ms
    if args.json:
        _write_json(args.json, report)


def cmd_sweep(args) -> None:
    from .atomic import check_writable
    from .report import print_table
    from .sweep import run_sweep

    check_writable(args.output, args.overwrite)
    results = run_sweep(args.model, args.calibration, args.eval, args.thresholds, args.output,
                        samples=args.calibration_samples, eval_samples=args.eval_samples, seed=args.seed,
                        device=_device(args.device), batch_size=args.batch_size, overwrite=args.overwrite,
                        targets=args.targets, allocations=args.allocations, target_kind=args.target_kind,
                        rank_multiple=args.rank_multiple, packing=args.packing)
    print_table(results)
    print(f"wrote {args.output}/sweep.csv, sweep.json, sweep.png")


def cmd_demo(args) -> None:
    from .demo import run_demo

    run_demo(device=_device(args.device), samples=args.samples, eval_samples=args.eval_samples,
             thresholds=args.thresholds, targets=args.targets, output=args.output)


# --- parser -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liteasr", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, model=True):
        if model:
            p.add_argument("model", metavar="MODEL",
                           help="HF dir, CTranslate2 dir, Hub id or short name (tiny.en, base, large-v3, turbo, ...)")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
        p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
        p.add_argument("--batch-size", type=_positive(int), default=8)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        p.add_argument("--on-bad-audio", choices=["error", "skip"], default="error",
                       help="unreadable, empty or NaN audio: stop with its name (default) or skip and list it")

    def calibration_args(p, required):
        p.add_argument("--calibration", metavar="DATA", required=required,
                       help="folder of audio files or JSONL manifest")
        p.add_argument("--calibration-samples", type=_positive(int), default=64, metavar="N",
                       help="clips to calibrate on, chosen by --seed (default 64)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--packing", choices=["pad", "pack", "mix"], default="mix",
                       help="calibration windows: each clip padded to 30 s (as inference sees short clips), "
                            "clips packed into full 30 s windows, or a mix of both (default, best measured)")
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")

    def attention_arg(p):
        p.add_argument("--attention", choices=["auto", "reduced", "standard"], default="auto",
                       help="self-attention of lite models: as recorded in the checkpoint (auto) or forced")

    p = sub.add_parser("compress", help="calibrate and compress the encoder, write a checkpoint")
    common(p)
    calibration_args(p, required=False)
    p.add_argument("--stats", metavar="FILE", help="reuse statistics from `liteasr calibrate` instead of --calibration")
    p.add_argument("--threshold", default="0.99:0.999", help="explained variance, A:M (attention:MLP) or one value")
    p.add_argument("--rank-multiple", type=int, default=16, help="ranks are multiples of this (default 16)")
    p.add_argument("--target-params", type=float, metavar="F",
                   help="keep this fraction of encoder linear parameters (ranks chosen per layer)")
    p.add_argument("--target-flops", type=float, metavar="F", help="keep this fraction of encoder FLOPs per window")
    p.add_argument("--allocation", choices=DAMAGE_MODELS, default=DEFAULT_DAMAGE,
                   help="damage model for --target-*: encoder (default: measured encoder-output error), decoder "
                        "(measured change of the decoder's predictions on its own transcripts), "
                        "sensitivity (one probe per layer), normalized or variance (discarded variance)")
    p.add_argument("--probe-clips", type=_positive(int), default=8, metavar="N",
                   help="calibration clips the measured damage models probe (default 8; cost grows linearly)")
    p.add_argument("--plan", metavar="JSON", help="apply this rank plan instead of the threshold rule")
    p.add_argument("--save-plan", metavar="JSON", help="write the rank plan used")
    p.add_argument("--save-stats", metavar="FILE", help="also write the calibration statistics")
    p.add_argument("--sequential", action="store_true",
                   help="factor layer by layer on inputs from the already-compressed earlier layers")
    p.add_argument("--dry-run", action="store_true", help="print the rank plan (and --save-plan it); write no model")
    p.add_argument("--output", "-o", metavar="DIR")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("calibrate", help="collect calibration statistics only (reusable by compress --stats)")
    common(p)
    calibration_args(p, required=True)
    p.add_argument("--output", "-o", required=True, metavar="FILE")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("transcribe", help="greedy transcription of audio files")
    common(p)
    p.add_argument("audio", nargs="+", metavar="AUDIO")
    attention_arg(p)
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("info", help="ranks, parameters and FLOPs of a model")
    common(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("eval", help="WER, RTFx and encoder cost of one or more models")
    common(p, model=False)
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--data", nargs="+", required=True, metavar="DATA", help="manifests or folders with transcripts")
    p.add_argument("--samples", type=_positive(int), help="evaluate on N clips per dataset (seeded)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="OUT")
    p.add_argument("--no-latency", action="store_true", help="skip the encoder latency measurement")
    attention_arg(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="encoder latency of MODEL vs BASE, interleaved in one process")
    common(p)
    p.add_argument("--vs", required=True, metavar="BASE")
    p.add_argument("--repeats", type=_positive(int), default=10)
    p.add_argument("--data", metavar="DATA", help="also time full transcription of these clips")
    p.add_argument("--samples", type=_positive(int), default=16, help="clips from --data (default 16)")
    p.add_argument("--json", metavar="OUT")
    attention_arg(p)
    p.set_defaults(func=cmd_bench, batch_size=1)

    p = sub.add_parser("sweep", help="one calibration, many compressions, each evaluated; table and Pareto plot")
    common(p)
    calibration_args(p, required=True)
    p.add_argument("--eval", nargs="+", required=True, metavar="DATA", help="evaluation manifests or folders")
    p.add_argument("--eval-samples", type=_positive(int), help="clips per evaluation set (seeded; default all)")
    p.add_argument("--thresholds", nargs="*", default=["0.99:0.999", "0.995:0.9995", "0.999:0.9999", "0.9995:0.99995"])
    p.add_argument("--targets", nargs="*", type=float, default=[], metavar="F", help="budget fractions to allocate for")
    p.add_argument("--target-kind", choices=["params", "flops"], default="params")
    p.add_argument("--allocations", nargs="+", default=[DEFAULT_DAMAGE], choices=DAMAGE_MODELS)
    p.add_argument("--rank-multiple", type=int, default=16)
    p.add_argument("--output", "-o", required=True, metavar="DIR")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("demo", help="compress the bundled tiny.en, evaluate it, print the table")
    common(p, model=False)
    p.add_argument("--samples", type=_positive(int), default=64, help="calibration clips (default 64)")
    p.add_argument("--eval-samples", type=_positive(int), default=40, help="clips per evaluation set (default 40)")
    p.add_argument("--thresholds", nargs="*", default=["0.99:0.999"], help="paper-rule points (default 0.99:0.999)")
    p.add_argument("--targets", nargs="*", type=float, default=[0.7],
                   help="liteasr points: fraction of encoder linear parameters kept (default 0.7)")
    p.add_argument("--output", default=None, metavar="DIR", help="keep the compressed checkpoints here")
    p.set_defaults(func=cmd_demo)
    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _terminate(signum, frame):
    raise KeyboardInterrupt  # unwinds through atomic writes, which remove their temp paths


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        _quiet_libraries()
        args.func(args)
        return 0
    except UserError as exc:
        if args.debug:
            raise
        print(f"liteasr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("liteasr: interrupted; no output was written", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user mistake: keep it short unless asked
        if args.debug:
            raise
        print(f"liteasr: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
