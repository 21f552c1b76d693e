"""`liteasr calibrate`: collect calibration statistics only (reusable by `compress --stats`)."""

from __future__ import annotations

from liteasr.cli import common


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="collect calibration statistics only (reusable by compress --stats)")
    common.model_args(p)
    common.calibration_args(p, required=True)
    common.shard_windows_arg(p)
    p.add_argument("--shard", metavar="I/N",
                   help="collect only shard I of N (machines without a shared network; `liteasr merge-stats` "
                        "adds the files)")
    p.add_argument("--output", "-o", required=True, metavar="FILE")
    p.set_defaults(func=run, distributed=True)


def run(args) -> None:
    from liteasr.atomic import check_writable
    from liteasr.calibration.calibrate import calibrate
    from liteasr.distributed import current, parse_shard

    shard = parse_shard(args.shard) if args.shard else (0, 1)
    check_writable(args.output, args.overwrite)
    clips, _ = common.clips(args, args.calibration, args.calibration_samples)
    loaded = common.load(args)
    stats = calibrate(loaded, clips, batch_size=args.batch_size, packing=args.packing, shard=shard,
                      shard_windows=args.shard_windows)
    if current().is_main:  # under torchrun only rank 0 writes
        stats.save(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: {len(stats.layers)} layers, {stats.meta['windows']} windows from {len(clips)} clips")
