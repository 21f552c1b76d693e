"""`liteasr compress`: calibrate and compress the encoder, write a checkpoint."""

from __future__ import annotations

import copy
import shlex
import sys

from ..errors import UserError
from . import common


def register(sub) -> None:
    p = sub.add_parser("compress", help="calibrate and compress the encoder, write a checkpoint")
    common.model_args(p)
    common.calibration_args(p, required=False)
    p.add_argument("--stats", metavar="FILE", help="reuse statistics from `liteasr calibrate` instead of --calibration")
    p.add_argument("--threshold", default="0.99:0.999", help="explained variance, A:M (attention:MLP) or one value")
    p.add_argument("--rank-multiple", type=int, default=16, help="ranks are multiples of this (default 16)")
    p.add_argument("--target-params", type=float, metavar="F",
                   help="keep this fraction of encoder linear parameters (ranks chosen per layer)")
    p.add_argument("--target-flops", type=float, metavar="F", help="keep this fraction of encoder FLOPs per window")
    p.add_argument("--allocation", choices=common.DAMAGE_MODELS, default=common.DEFAULT_DAMAGE,
                   help="damage model for --target-*: encoder (default: measured encoder-output error), decoder "
                        "(measured change of the decoder's predictions on its own transcripts), "
                        "sensitivity (one probe per layer; measured better than encoder at --target-params 0.6, worse at "
                        "0.7: benchmarks/refine.md), normalized or variance (discarded variance)")
    p.add_argument("--probe-clips", type=common.positive(int), default=8, metavar="N",
                   help="calibration clips the measured damage models probe (default 8; cost grows linearly)")
    p.add_argument("--plan", metavar="JSON", help="apply this rank plan instead of the threshold rule")
    p.add_argument("--save-plan", metavar="JSON", help="write the rank plan used")
    p.add_argument("--save-stats", metavar="FILE", help="also write the calibration statistics")
    p.add_argument("--refine", choices=["auto", "none", "refit", "heal"], default="auto",
                   help="correct the factors after factoring: none (plain PCA, the paper's setting), refit "
                        "(anchored closed-form refit against the dense model), heal (PCA factors, then healing on "
                        "the calibration audio); auto (default): the measured best with --target-* (see "
                        "benchmarks/refine.md), none with --threshold")
    # Healing options default to None: HealConfig's defaults apply (the recipe measured in
    # benchmarks/refine.md); the help repeats them (a test keeps the two in step) because importing
    # the healing code here would load torch for every `liteasr --help`.
    p.add_argument("--heal-minutes", type=common.positive(float), metavar="M",
                   help="wall-clock budget for healing (default 15)")
    p.add_argument("--heal-steps", type=int, metavar="N", help="end-to-end healing steps (default 150)")
    p.add_argument("--heal-layernorm", action="store_true", help="let healing adjust the encoder's LayerNorms too")
    p.add_argument("--heal-dense", action="store_true",
                   help="let healing adjust the encoder projections the rank plan keeps dense too (measured no "
                        "better at --target-params 0.6: benchmarks/refine.md)")
    p.add_argument("--heal-lr", type=common.positive(float), metavar="LR", help="end-to-end learning rate (default 0.0001)")
    p.add_argument("--heal-schedule", choices=["constant", "cosine"],
                   help="end-to-end learning rate over --heal-steps (default constant; cosine: decays to 0 at the "
                        "last step, measured worse at --target-params 0.6: benchmarks/refine.md)")
    p.add_argument("--heal-kl", type=float, metavar="W",
                   help="weight of the decoder KL term (default 0: the encoder output alone, no dense decoding)")
    p.add_argument("--heal-metric", choices=["encoder", "cross"],
                   help="how healing measures the encoder-output error (default encoder: the plain squared error; "
                        "cross: as the decoder's cross-attention keys and values read it, no decoding needed)")
    p.add_argument("--heal-block-epochs", type=int, metavar="N",
                   help="block-wise passes per layer before the end-to-end stage (default 0: none)")
    p.add_argument("--heal-eval-every", type=common.positive(int), metavar="N",
                   help="end-to-end steps between held-out checks (default 25)")
    p.add_argument("--heal-patience", type=common.positive(int), metavar="N",
                   help="held-out checks without improvement before healing stops (default 6)")
    p.add_argument("--heal-seeds", type=common.positive(int), metavar="K",
                   help="heal K times with seeds SEED..SEED+K-1 and average the factors (default 1; K times the "
                   "cost; 3 measured better at --target-params 0.6: benchmarks/refine.md)")
    p.add_argument("--heal-speeds", type=common.speed_list, metavar="F,F,...",
                   help="healing also sees every clip at these speed factors (e.g. 0.9,1.0,1.1: speed "
                        "perturbation; default 1.0 only; 0.9,1.0,1.1 measured worse at --target-params 0.6: "
                        "benchmarks/refine.md)")
    p.add_argument("--heal-data", metavar="DATA", nargs="+",
                   help="more voices to heal on (not to calibrate on): clips drawn from these sources join the "
                        "calibration clips for healing only (with the calibration sources named again, measured "
                        "better at --target-params 0.6: benchmarks/refine.md)")
    p.add_argument("--heal-samples", type=common.positive(int), metavar="N",
                   help="clips drawn from --heal-data, chosen by --seed (default: as many as --calibration-samples)")
    common.shard_windows_arg(p)
    p.add_argument("--dry-run", action="store_true", help="print the rank plan (and --save-plan it); write no model")
    p.add_argument("--output", "-o", metavar="DIR")
    p.set_defaults(func=run, distributed=True)


HEAL_OPTIONS = {"heal_minutes": "minutes", "heal_steps": "steps", "heal_lr": "lr", "heal_schedule": "schedule",
                "heal_kl": "kl_weight", "heal_metric": "metric", "heal_block_epochs": "block_epochs",
                "heal_eval_every": "eval_every", "heal_patience": "patience", "heal_speeds": "speeds",
                "heal_seeds": "seeds"}


def heal_config(args):
    """HealConfig from the options given; the rest keep the library's defaults."""
    from ..refine import HealConfig

    given = {field: getattr(args, option) for option, field in HEAL_OPTIONS.items() if getattr(args, option) is not None}
    return HealConfig(**given, layernorm=args.heal_layernorm, dense=args.heal_dense, seed=args.seed)


def heal_clips(args, calibration: list | None, refine: str) -> list:
    """The --heal-data clips healing adds to the calibration clips (none of them a calibration clip)."""
    if args.heal_data is None:
        if args.heal_samples is not None:
            raise UserError("--heal-samples needs --heal-data")
        return []
    if refine != "heal":
        raise UserError("--heal-data is audio for healing: it needs --calibration audio and healing "
                        "(--refine heal, or auto with a --target-*)")
    from ..audio import read_sources

    taken = {c.path for c in calibration}
    sets = read_sources(args.heal_data, *common.columns(args))
    for ds in sets:
        ds.clips = [c for c in ds.clips if c.path not in taken]
    if not any(ds.clips for ds in sets):
        raise UserError("--heal-data: every clip is already a calibration clip")
    return common.clips(args, sets, args.heal_samples or args.calibration_samples)[0]  # draw skips emptied sources


def calibration_languages(loaded, clips) -> str:
    """`en 128, pl 64, unstated 64` from the clips' manifests; warns when a multilingual model would be
    calibrated on one language (measured on base at 0.6: languages the calibration did not hear lost
    about ten times the WER of those it heard)."""
    from collections import Counter

    from .. import whisper

    counts = Counter(c.language or "unstated" for c in clips)
    text = ", ".join(f"{lang} {n}" for lang, n in counts.most_common())
    stated = {lang for lang in counts if lang != "unstated"}
    if whisper.is_multilingual(loaded.generation_config) and len(stated) < 2 and current_is_main():
        heard = f"languages {text}" if stated else "audio whose manifests state no `language`"
        print(f"liteasr: warning: a multilingual model calibrated on {heard}: languages the calibration does not "
              "hear lose far more accuracy than those it hears. Mix in audio of every language you serve, each "
              "manifest line with its `language`.", file=sys.stderr)
    return text


def current_is_main() -> bool:
    from ..distributed import current

    return current().is_main


def budget(args):
    from ..allocate import Budget

    given = [(k, v) for k, v in (("params", args.target_params), ("flops", args.target_flops)) if v is not None]
    if len(given) > 1:
        raise UserError("give at most one of --target-params, --target-flops")
    if given and args.plan:
        raise UserError("--plan fixes the ranks; it cannot be combined with a target")
    return Budget(*given[0]) if given else None


def run(args) -> None:
    from ..atomic import check_writable
    from ..calibrate import calibrate
    from ..checkpoint import Provenance, save_checkpoint
    from ..compress import check_stats, compress_, spectra, target_plan, threshold_plan
    from ..distributed import current
    from ..flops import encoder_cost
    from ..plan import RankPlan, ThresholdRule
    from ..stats import CovarianceStats

    main = current().is_main  # under torchrun every process computes, only rank 0 writes
    if args.output is None and not args.dry_run:
        raise UserError("--output DIR is required (or --dry-run to print the rank plan only)")
    if args.output is not None:
        check_writable(args.output, args.overwrite)
    if min(args.heal_kl or 0, args.heal_block_epochs or 0) < 0:
        raise UserError("--heal-kl and --heal-block-epochs cannot be negative")
    rule = ThresholdRule.parse(args.threshold, args.rank_multiple)
    if (args.calibration is None) == (args.stats is None):
        raise UserError("give exactly one of --calibration DATA or --stats FILE")
    plan = RankPlan.load(args.plan) if args.plan else None
    target = budget(args)
    clips, skipped = common.clips(args, args.calibration, args.calibration_samples) if args.calibration else (None, [])
    from ..refine import DEFAULT_FOR_TARGETS

    refine = args.refine if args.refine != "auto" else (DEFAULT_FOR_TARGETS if target is not None and clips is not None
                                                       else "none")
    if refine != "none" and clips is None:
        raise UserError(f"--refine {refine} needs --calibration audio (statistics alone cannot refit or heal)")
    extra = heal_clips(args, clips, refine)
    loaded = common.load(args)
    base = encoder_cost(loaded.model)
    if clips is not None:
        stats = calibrate(loaded, clips, batch_size=args.batch_size, packing=args.packing,
                          shard_windows=args.shard_windows)
        if args.save_stats and main:
            stats.save(args.save_stats)
        sources = " + ".join(args.calibration)
        calibration = f"{len(clips)} clips of {sources} (seed {args.seed}), {stats.meta['windows']} windows, " \
                      f"languages {calibration_languages(loaded, clips)}"
        if skipped:
            calibration += "; skipped as unreadable: " + ", ".join(str(p) for p, _ in skipped)
    else:
        stats = CovarianceStats.load(args.stats)
        calibration = f"statistics {args.stats} ({stats.meta.get('clips', '?')} clips)"
    check_stats(loaded.model, stats)
    eig = spectra(stats)
    if plan is None and target is not None:
        plan = target_plan(loaded, stats, eig, target, args.allocation, clips, args.rank_multiple,
                           probe_clips=args.probe_clips)
    plan = plan or threshold_plan(loaded.model, stats, rule, eig)
    if args.save_plan and main:
        plan.save(args.save_plan)
    if args.dry_run:
        print(plan.table())
        return
    if not main:  # refit, healing and writing happen once, on rank 0
        return
    if refine == "refit":
        from ..refine import refit

        lite = refit(loaded, plan, clips, args.packing, args.batch_size)
        plan.method += ", anchored refit"
    else:  # healing needs the dense model beside the compressed one: compress a copy
        lite = compress_(copy.deepcopy(loaded.model) if refine == "heal" else loaded.model, stats, plan, eig)
        if refine == "heal":  # from the PCA factors: healing the refit measured worse (benchmarks/refine.md)
            from ..refine import heal

            print(f"healing the factors on the calibration audio{' and --heal-data' if extra else ''}: they move "
                  "toward its voices, so calibrate on audio like your users' (--refine none: the paper's plain PCA "
                  "factors)")
            report = heal(loaded, lite, clips + extra, heal_config(args), args.packing)
            print(report.summary())
            more = f" and {len(extra)} clips of {' + '.join(args.heal_data)}" if extra else ""
            plan.method += f", healed on the calibration clips{more} ({report.steps} end-to-end steps, " \
                           f"{report.seconds / 60:.1f} min)"
    command = "liteasr " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    save_checkpoint(lite, loaded.processor, args.output, Provenance(args.model, base, calibration, plan.method, command,
                                                                         stats.meta.get("clip_hashes", [])),
                    overwrite=args.overwrite)
    after = encoder_cost(lite)
    print(f"wrote {args.output}: encoder params {base.params:,} -> {after.params:,} ({after.params / base.params:.1%}), "
          f"GFLOPs/window {base.gflops:.2f} -> {after.gflops:.2f}")
