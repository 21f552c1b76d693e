"""Move rank between attention and MLP projections of a saved rank plan, at about the same size: does
healing want the ranks somewhere else than the allocation put them?

    python research/allocation/shift_plan.py runs/refine/cpusens-0.6.plan.json --qk -32 --fc 16 --fc-layers 0 1 2 \
        -o runs/refine/qkless-0.6.plan.json
    liteasr compress tiny.en $C --plan runs/refine/qkless-0.6.plan.json --refine none -o runs/refine/qkless-0.6

Factored q_proj / k_proj ranks move by --qk (never below --floor), factored fc1 / fc2 ranks of --fc-layers
by --fc; projections the plan keeps dense stay dense. Prints the size against the original plan's.
"""

import argparse
import dataclasses
import sys

from liteasr.errors import UserError
from liteasr.planning.plan import RankPlan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("plan")
    ap.add_argument("--qk", type=int, default=0, help="added to every factored q_proj and k_proj rank")
    ap.add_argument("--fc", type=int, default=0, help="added to the factored fc1 and fc2 ranks of --fc-layers")
    ap.add_argument("--fc-layers", type=int, nargs="+", help="encoder layers whose fc ranks move (default: all)")
    ap.add_argument("--floor", type=int, default=32, help="lowest rank a move may leave")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    try:
        plan = RankPlan.load(args.plan)
    except UserError as exc:
        raise SystemExit(f"shift_plan.py: {exc}") from None
    why = f"q/k ranks {args.qk:+d}, fc ranks {args.fc:+d} (research/allocation/shift_plan.py)"
    layers = {}
    for key, layer in plan.layers.items():
        index, kind = int(key.split(".")[1]), key.split(".")[-1]
        move = args.qk if kind in ("q_proj", "k_proj") else args.fc if kind in ("fc1", "fc2") and (
            args.fc_layers is None or index in args.fc_layers) else 0
        if layer.rank is None or not move:
            layers[key] = layer
            continue
        rank = max(args.floor, layer.rank + move)
        layers[key] = dataclasses.replace(layer, rank=rank, explained=float("nan"),
                                          reason=f"{why}: from rank {layer.rank}")
    shifted = dataclasses.replace(plan, layers=layers, method=f"{plan.method}, {why}")
    shifted.save(args.output)
    print(f"wrote {args.output}: {shifted.kept_fraction():.2%} of the encoder's linear parameters kept "
          f"(the original plan {plan.kept_fraction():.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
