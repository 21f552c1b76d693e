"""`liteasr calibrate`: collect calibration statistics only (reusable by `compress --stats`)."""

from __future__ import annotations

from . import common


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="collect calibration statistics only (reusable by compress --stats)")
    common.model_args(p)
    common.calibration_args(p, required=True)
    p.add_argument("--output", "-o", required=True, metavar="FILE")
    p.set_defaults(func=run)


def run(args) -> None:
    from ..atomic import check_writable
    from ..calibrate import calibrate

    check_writable(args.output, args.overwrite)
    clips, _ = common.clips(args, args.calibration, args.calibration_samples)
    loaded = common.load(args)
    stats = calibrate(loaded, clips, batch_size=args.batch_size, packing=args.packing)
    stats.save(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: {len(stats.layers)} layers, {stats.meta['windows']} windows from {len(clips)} clips")
