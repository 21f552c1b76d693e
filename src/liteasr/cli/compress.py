"""`liteasr compress`: calibrate and compress the encoder, write a checkpoint."""

from __future__ import annotations

import dataclasses
import shlex
import sys

from liteasr.cli import common
from liteasr.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("compress", help="calibrate and compress the encoder, write a checkpoint",
                       description="Calibrate on unlabeled audio, choose every projection's rank, factor, refine, "
                                   "and write a Hugging Face checkpoint.")
    p.add_argument("model", metavar="MODEL",
                   help="HF dir, CTranslate2 dir, Hub id or short name (tiny.en, base, large-v3, turbo, ...)")
    target = p.add_argument_group("target: what to keep")
    target.add_argument("--target-params", type=float, metavar="F",
                        help="keep this fraction of encoder linear parameters, ranks chosen per layer (default 0.7 "
                             "unless --target-flops, --threshold or --plan chooses the ranks; from --stats alone, "
                             "where damage cannot be measured, the paper's rule)")
    target.add_argument("--target-flops", type=float, metavar="F", help="keep this fraction of encoder FLOPs per window")
    target.add_argument("--allocation", choices=common.DAMAGE_MODELS, metavar="M",
                        help="damage model for a target: encoder (default: measured encoder-output error), decoder "
                             "(measured change of the decoder's predictions on its own transcripts), sensitivity (one "
                             "probe per layer), normalized or variance (discarded variance, no audio needed)")
    target.add_argument("--probe-clips", type=common.positive(int), metavar="N",
                        help="calibration clips the measured damage models probe (default 8; cost grows linearly)")
    target.add_argument("--threshold", metavar="A:M",
                        help="the paper's rule instead of a target: explained variance to keep, attention:MLP or "
                             "one value (0.99:0.999 is the paper's)")
    target.add_argument("--rank-multiple", type=int, default=16, metavar="N", help="ranks are multiples of N (default 16)")
    target.add_argument("--plan", metavar="JSON", help="apply this rank plan (from --save-plan, maybe edited)")
    calib = p.add_argument_group("calibration audio")
    common.calibration_args(calib, required=False, overwrite=False)
    calib.add_argument("--stats", metavar="FILE",
                       help="reuse statistics from `liteasr calibrate` instead of --calibration (no healing then)")
    calib.add_argument("--save-stats", metavar="FILE", help="also write the calibration statistics")
    common.shard_windows_arg(calib)
    refine = p.add_argument_group("refinement: correcting the factors (healing options apply only to healing)")
    refine.add_argument("--refine", choices=["auto", "none", "refit", "heal"], default="auto",
                        help="none (plain PCA, the paper's setting), refit (anchored closed-form refit against the dense "
                             "model), heal (PCA factors, then healing on the calibration audio); auto (default): heal "
                             "with a target (given or the default), none with --threshold, --plan or --stats "
                             "(research/healing/refine.md)")
    # Healing options default to None: HealConfig's defaults apply (the recipe measured in
    # research/healing/refine.md); the help repeats them (a test keeps the two in step) because importing
    # the healing code here would load torch for every `liteasr --help`.
    refine.add_argument("--heal-minutes", type=common.positive(float), metavar="M",
                        help="wall-clock budget for healing (default 15)")
    refine.add_argument("--heal-steps", type=int, metavar="N", help="end-to-end healing steps (default 150)")
    refine.add_argument("--heal-lr", type=common.positive(float), metavar="LR",
                        help="end-to-end learning rate (default 0.0001)")
    refine.add_argument("--heal-eval-every", type=common.positive(int), metavar="N",
                        help="end-to-end steps between held-out checks (default 25)")
    refine.add_argument("--heal-patience", type=common.positive(int), metavar="N",
                        help="held-out checks without improvement before healing stops (default 6)")
    refine.add_argument("--heal-seeds", type=common.positive(int), metavar="K",
                        help="heal K times with seeds SEED..SEED+K-1 and average the factors (default 1; K times the "
                             "cost; 3 measured better for tiny.en at --target-params 0.6, not for base at 0.7)")
    refine.add_argument("--heal-data", metavar="DATA", nargs="+",
                        help="more voices to heal on (not to calibrate on): clips drawn from these sources join the "
                             "calibration clips for healing only, the factors' and the window's (default none); "
                             "SOURCE@LANG states a source's language")
    refine.add_argument("--heal-samples", type=common.positive(int), metavar="N",
                        help="clips drawn from --heal-data, chosen by --seed (default: as many as --calibration-samples)")
    window = p.add_argument_group("window: encode only the audio that is there (healed for it)")
    window.add_argument("--window", metavar="auto|S",
                        help="heal the model to encode clips on windows sized to the audio, and record the policy in "
                             "the checkpoint (inference honours it): auto (a floor of --window-floor) or a floor in "
                             "seconds; default: Whisper's padded 30 s window, no window healing")
    window.add_argument("--window-floor", type=common.positive(float), metavar="S",
                        help="shortest window in seconds, with --window auto (default 5)")
    window.add_argument("--window-margin", type=float, metavar="S",
                        help="seconds of window after the audio (default 1)")
    window.add_argument("--window-heal-steps", type=common.positive(int), metavar="N",
                        help="steps of healing for the window, the learning rate decaying to 0 by the last one "
                             "(default 1000)")
    window.add_argument("--window-heal-minutes", type=common.positive(float), metavar="M",
                        help="wall-clock budget for healing for the window, all runs together (default 90: 30 a run, "
                             "times --window-heal-seeds)")
    window.add_argument("--window-heal-seeds", type=common.positive(int), metavar="K",
                        help="heal for the window K times with seeds SEED..SEED+K-1 and average the weights (default "
                             "3; the cost is K runs; 1 is a third of the time, but single runs of tiny.en's 0.7 "
                             "compression varied by over a WER point: research/window/seeds.md)")
    output = p.add_argument_group("output")
    output.add_argument("--output", "-o", metavar="DIR", help="the checkpoint directory (written atomically)")
    output.add_argument("--overwrite", action="store_true", help="replace an existing output (default: an error)")
    output.add_argument("--dry-run", action="store_true", help="print the rank plan (and --save-plan it); write no model")
    output.add_argument("--save-plan", metavar="JSON", help="also write the rank plan used")
    common.model_args(p.add_argument_group("device"), model=False)
    p.set_defaults(func=run, distributed=True)


# Only the options of the recipe and its budget: the variants measured no better (block-wise stages, a
# decoder KL term, other losses, schedules, speed perturbation, ...) live in research/healing/variants.py.
HEAL_OPTIONS = {"heal_minutes": "minutes", "heal_steps": "steps", "heal_lr": "lr", "heal_eval_every": "eval_every",
                "heal_patience": "patience", "heal_seeds": "seeds"}


WINDOW_HEAL_OPTIONS = {"window_heal_steps": "steps", "window_heal_minutes": "minutes",
                       "window_heal_seeds": "seeds"}


def heal_config(args, options: dict = HEAL_OPTIONS, defaults=None):
    """HealConfig from the options given; the rest keep the library's defaults (`defaults`: HealConfig's)."""
    from liteasr.refine import HealConfig

    given = {field: getattr(args, option) for option, field in options.items() if getattr(args, option) is not None}
    return dataclasses.replace(defaults or HealConfig(), **given, seed=args.seed)


def heal_clips(args, calibration: list) -> list:
    """The --heal-data clips healing adds to the calibration clips (none of them a calibration clip); that
    healing runs at all is checked before (inapplicable)."""
    if args.heal_data is None:
        if args.heal_samples is not None:
            raise UserError("--heal-samples needs --heal-data")
        return []
    from liteasr.data.audio import read_sources

    taken = {c.path for c in calibration}
    sets = read_sources(args.heal_data, *common.columns(args))
    for ds in sets:
        ds.clips = [c for c in ds.clips if c.path not in taken]
    if not any(ds.clips for ds in sets):
        raise UserError("--heal-data: every clip is already a calibration clip")
    return common.clips(args, sets, args.heal_samples or args.calibration_samples)[0]  # draw skips emptied sources


def note(message: str) -> None:
    """Warnings to stderr, progress notes to stdout."""
    print(message, file=sys.stderr if message.startswith("liteasr: warning") else sys.stdout)


def inapplicable(args, has_target: bool, refine: str) -> None:
    """An option that cannot apply is an error, not silently ignored."""
    for option in ("allocation", "probe_clips"):
        if getattr(args, option) is not None and not has_target:
            raise UserError(f"--{option.replace('_', '-')} applies to ranks allocated for a target (--target-*, or "
                            "the default), not to --threshold, --plan or --stats alone")
    for option in ("window_floor", "window_margin", *WINDOW_HEAL_OPTIONS):
        if getattr(args, option) is not None and args.window is None:
            raise UserError(f"--{option.replace('_', '-')} applies with --window only")
    if args.window is not None and args.window != "auto" and args.window_floor is not None:
        raise UserError("--window S is the floor itself: give --window auto with --window-floor, or --window S")
    # healing for the window heals on --heal-data too; the factor-healing options are the factors' alone
    window = window_policy(args) is not None
    given = [o for o in (*(() if window else ("heal_data", "heal_samples")), *HEAL_OPTIONS)
             if getattr(args, o) not in (None, False)]
    if given and refine != "heal":
        raise UserError(f"--{given[0].replace('_', '-')} applies to healing only (--refine heal, or auto with a "
                        f"target{'' if window else '; or --window'}), not to --refine {refine}")


def window_policy(args):
    """The WindowPolicy --window asks for (None: Whisper's padded window)."""
    if args.window is None:
        return None
    from liteasr.models.whisper import AUTO_WINDOW, WindowPolicy

    floor = common.window_option(args.window)
    floor = (args.window_floor or AUTO_WINDOW.floor) if floor == "auto" else floor
    margin = AUTO_WINDOW.margin if args.window_margin is None else args.window_margin
    policy = WindowPolicy(floor=floor, margin=margin, multiple=AUTO_WINDOW.multiple)
    return None if policy.padded else policy


def config(args):
    """CompressConfig from the command line."""
    from liteasr.pipeline import CompressConfig
    from liteasr.planning.plan import RankPlan

    defaults = CompressConfig()
    return CompressConfig(target_params=args.target_params, target_flops=args.target_flops,
                          threshold=args.threshold,
                          allocation=args.allocation or defaults.allocation,
                          probe_clips=args.probe_clips or defaults.probe_clips, rank_multiple=args.rank_multiple,
                          refine=args.refine, heal=heal_config(args), packing=args.packing,
                          calibration_samples=args.calibration_samples, seed=args.seed, batch_size=args.batch_size,
                          shard_windows=args.shard_windows, plan=RankPlan.load(args.plan) if args.plan else None,
                          window=window_policy(args), window_heal=window_heal_config(args))


def window_heal_config(args):
    """HealConfig for healing for the window. A soup's runs share the budget (as healing's do), so with
    --window-heal-seeds K the default budget is K runs': each run keeps the time it was measured with."""
    from liteasr.refine import WINDOW_HEAL, with_runs

    config = heal_config(args, WINDOW_HEAL_OPTIONS, WINDOW_HEAL)
    if args.window_heal_minutes is None:
        config = dataclasses.replace(config, minutes=with_runs(WINDOW_HEAL, config.seeds).minutes)
    return config


def run(args) -> None:
    from liteasr.atomic import check_writable
    from liteasr.calibration.stats import CovarianceStats
    from liteasr.distributed import current
    from liteasr.pipeline import PAPER_RULE, calibrate_and_plan, finish

    main = current().is_main  # under torchrun every process computes, only rank 0 writes
    if args.output is None and not args.dry_run:
        raise UserError("--output DIR is required (or --dry-run to print the rank plan only)")
    if args.output is not None:
        check_writable(args.output, args.overwrite)
    if (args.calibration is None) == (args.stats is None):
        raise UserError("give exactly one of --calibration DATA or --stats FILE")
    if args.window is not None and args.stats is not None:
        raise UserError("--window heals the model for its window on audio: it needs --calibration, not --stats")
    settings = config(args)
    target = settings.budget(has_audio=args.calibration is not None)
    refine = settings.refinement(args.calibration is not None)
    inapplicable(args, target is not None, refine)
    if main and settings.ranks_defaulted:
        print(f"ranks: the default, --target-params {target.fraction:g} (measured damage"
              f"{', then healing' if refine == 'heal' else ''})" if target else
              f"ranks: the default from statistics alone, the paper's rule (--threshold {PAPER_RULE}): measured "
              "damage and healing need --calibration audio")
    clips, skipped = common.clips(args, args.calibration, args.calibration_samples) if args.calibration else (None, [])
    extra = heal_clips(args, clips)
    loaded = common.load(args)
    if clips is not None:
        describe = f"{len(clips)} clips of {' + '.join(args.calibration)}"
        if skipped:
            describe += " (skipped as unreadable: " + ", ".join(str(p) for p, _ in skipped) + ")"
        planned = calibrate_and_plan(loaded, clips, settings, describe, note)
        if args.save_stats and main:
            planned.stats.save(args.save_stats)
    else:
        stats = CovarianceStats.load(args.stats)
        planned = calibrate_and_plan(loaded, stats, settings, f"statistics {args.stats} "
                                     f"({stats.meta.get('clips', '?')} clips)", note)
    if main:
        print(f"calibration: {planned.description}")
    if args.save_plan and main:
        planned.plan.save(args.save_plan)
    if args.dry_run:
        print(planned.plan.table())
        return
    more = f"{len(extra)} clips of {' + '.join(args.heal_data)}" if extra else None
    lite = finish(planned, settings, refine, extra, more, note)
    if lite is None:  # not rank 0
        return
    lite.save(args.output, overwrite=args.overwrite, command="liteasr " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    print(f"wrote {args.output}: {lite.summary()}")
