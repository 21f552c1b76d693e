"""`liteasr merge-stats`: add statistics files, e.g. shards collected on machines with no shared network."""

from __future__ import annotations

from liteasr.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("merge-stats", help="add statistics files (from `calibrate --shard I/N` or other calibrations)")
    p.add_argument("inputs", nargs="+", metavar="STATS", help="statistics files from `liteasr calibrate`")
    p.add_argument("--output", "-o", required=True, metavar="FILE")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run)


def shard_order(files: list[str], metas: list[dict]) -> list[int]:
    """Indices of `files` by shard (shards of one calibration must all be there, once each); files
    from separate calibrations keep the order given."""
    shards = [m.get("shard") for m in metas]
    if not any(shards):
        return list(range(len(files)))
    if not all(shards):
        plain = files[shards.index(None)]
        raise UserError(f"{plain} is a whole calibration; it cannot be merged with shards (--shard I/N files)")
    index = [tuple(int(x) for x in s.split("/")) for s in shards]
    counts = {n for _, n in index}
    if len(counts) > 1:
        raise UserError(f"shards of different splits: {', '.join(sorted(set(shards)))}")
    n = counts.pop()
    for key in ("clip_hashes", "packing"):
        if any(m.get(key) != metas[0].get(key) for m in metas):
            raise UserError(f"the shards come from different calibrations (their {key.replace('_', ' ')} differ)")
    seen = [i for i, _ in index]
    missing = sorted(set(range(n)) - set(seen))
    duplicated = sorted({i for i in seen if seen.count(i) > 1})
    if missing or duplicated:
        problem = (f"missing {', '.join(f'{i}/{n}' for i in missing)}" if missing
                   else f"given twice: {', '.join(f'{i}/{n}' for i in duplicated)}")
        raise UserError(f"shards {problem}")
    return sorted(range(len(files)), key=lambda k: index[k][0])


def run(args) -> None:
    from liteasr.atomic import check_writable
    from liteasr.calibration.stats import CovarianceStats

    check_writable(args.output, args.overwrite)
    if len(set(args.inputs)) != len(args.inputs):
        raise UserError("a statistics file is listed twice")
    if len(args.inputs) < 2:
        raise UserError("give at least two statistics files to merge")
    stats = [CovarianceStats.load(p) for p in args.inputs]
    order = shard_order(args.inputs, [s.meta for s in stats])
    merged = stats[order[0]]
    for k in order[1:]:
        merged = merged.merge(stats[k])
    if "shard" in merged.meta:  # shards of one calibration: one set of clips, not N
        merged.meta = dict(merged.meta, clips=stats[0].meta.get("clips"), clip_hashes=stats[0].meta.get("clip_hashes"))
        merged.meta.pop("shard")
    merged.save(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: {len(merged.layers)} layers, {merged.meta.get('windows', '?')} windows from "
          f"{len(args.inputs)} files")
