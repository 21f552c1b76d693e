"""`liteasr sweep`: one calibration, many compressions, each evaluated; table and Pareto plot."""

from __future__ import annotations

from liteasr.cli import common


def register(sub) -> None:
    p = sub.add_parser("sweep", help="one calibration, many compressions, each evaluated; table and Pareto plot")
    common.model_args(p)
    common.calibration_args(p, required=True)
    p.add_argument("--eval", nargs="+", required=True, metavar="DATA",
                   help="evaluation manifests, folders with transcripts or Hugging Face datasets; SOURCE@LANG states "
                        "a source's language")
    p.add_argument("--eval-samples", type=common.positive(int), help="clips per evaluation set (seeded; default all)")
    p.add_argument("--thresholds", nargs="*", default=["0.99:0.999", "0.995:0.9995", "0.999:0.9999", "0.9995:0.99995"])
    p.add_argument("--targets", nargs="*", type=float, default=[], metavar="F", help="budget fractions to allocate for")
    p.add_argument("--target-kind", choices=["params", "flops"], default="params")
    p.add_argument("--allocations", nargs="+", default=[common.DEFAULT_DAMAGE], choices=common.DAMAGE_MODELS)
    p.add_argument("--rank-multiple", type=int, default=16)
    p.add_argument("--refine", nargs="+", default=["none"], choices=["none", "refit", "heal"],
                   help="corrections to build each budget point with (default none; heal costs minutes per point)")
    p.add_argument("--heal-minutes", type=common.positive(float), default=15.0, metavar="M")
    p.add_argument("--output", "-o", required=True, metavar="DIR")
    p.set_defaults(func=run, distributed=True)


def run(args) -> None:
    from liteasr.atomic import check_writable
    from liteasr.evaluation.report import print_table
    from liteasr.evaluation.sweep import run_sweep
    from liteasr.refine import HealConfig

    check_writable(args.output, args.overwrite)
    results = run_sweep(args.model, args.calibration, args.eval, args.thresholds, args.output,
                        samples=args.calibration_samples, eval_samples=args.eval_samples, seed=args.seed,
                        device=common.device(args.device), batch_size=args.batch_size, overwrite=args.overwrite,
                        targets=args.targets, allocations=args.allocations, target_kind=args.target_kind,
                        rank_multiple=args.rank_multiple, packing=args.packing, refines=args.refine,
                        heal_config=HealConfig(minutes=args.heal_minutes, seed=args.seed),
                        columns=common.columns(args))
    print_table(results)
    print(f"wrote {args.output}/sweep.csv, sweep.json, sweep.png")
