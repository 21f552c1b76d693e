"""`liteasr demo`: compress the bundled tiny.en, evaluate it, print the table."""

from __future__ import annotations

from liteasr.cli import common


def register(sub) -> None:
    p = sub.add_parser("demo", help="compress the bundled tiny.en, evaluate it, print the table")
    common.model_args(p, model=False)
    p.add_argument("--samples", type=common.positive(int), default=64, help="calibration clips (default 64)")
    p.add_argument("--eval-samples", type=common.positive(int), default=40, help="clips per evaluation set (default 40)")
    p.add_argument("--thresholds", nargs="*", default=["0.99:0.999"], help="paper-rule points (default 0.99:0.999)")
    p.add_argument("--targets", nargs="*", type=float, default=[0.7],
                   help="liteasr points: fraction of encoder linear parameters kept (default 0.7)")
    p.add_argument("--output", default=None, metavar="DIR", help="keep the compressed checkpoints here")
    p.set_defaults(func=run)


def run(args) -> None:
    from liteasr.demo import run_demo

    run_demo(device=common.device(args.device), samples=args.samples, eval_samples=args.eval_samples,
             thresholds=args.thresholds, targets=args.targets, output=args.output)
