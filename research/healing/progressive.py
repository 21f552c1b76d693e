"""Progressive compression: shrink an already healed checkpoint further, then heal again against the
*original* dense model.

    python research/healing/progressive.py runs/refine/cpudefault-0.7 --target 0.6 --output runs/refine/progressive-0.6 \
        [--calibration ../shared/data/speech/librispeech_calib runs/refine/speechocean_train_calib] [--clips 200]

The start's factors are multiplied back into dense-shaped weights (a dense model that computes exactly
what the start computes), which is calibrated, allocated (`--allocation`, default `encoder`, measured on it)
and factored to `--target` of tiny.en's encoder linear parameters like any model; healing then uses
the original dense model as its teacher, on the same clips. Compare it with `liteasr compress
--target-params T` on the same clips (research/healing/refine.md).
"""

import argparse
import copy
import dataclasses
import sys

import torch
from _calibration import add_calibration_options, calibration_clips  # noqa: E402  (beside this script)

from liteasr.models import whisper
from liteasr.planning.allocate import Budget
from liteasr.calibration.calibrate import calibrate
from liteasr.checkpoint import Provenance, save_checkpoint
from liteasr.factorize.compress import compress_, spectra, target_plan
from liteasr.planning.damage import DAMAGE_MODELS, DEFAULT_DAMAGE
from liteasr.planning.flops import encoder_cost
from liteasr.models.hf.modeling_lite_whisper import LowRankLinear
from liteasr.factorize.lowrank import product
from liteasr.refine import HealConfig, heal


def densified(dense: torch.nn.Module, lite: torch.nn.Module) -> torch.nn.Module:
    """A copy of `dense` whose encoder projections compute what `lite`'s do."""
    out = copy.deepcopy(dense)
    targets = whisper.encoder_linears(out)
    with torch.no_grad():
        for key, module in whisper.encoder_linears(lite).items():
            target = targets[key]
            if isinstance(module, LowRankLinear):
                target.weight.copy_(product(module).T.float())
            else:
                target.weight.copy_(module.weight)
            if target.bias is not None:
                target.bias.copy_(module.bias)
            # Whisper's key projections have no bias: a key bias adds the same amount to every score of a
            # query, which the softmax ignores, so dropping the folded one changes nothing
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("start", help="a healed liteasr checkpoint of tiny.en")
    ap.add_argument("--target", type=float, required=True, help="fraction of encoder linear parameters to keep")
    ap.add_argument("--output", required=True)
    ap.add_argument("--allocation", choices=DAMAGE_MODELS, default=DEFAULT_DAMAGE, help="damage model for the ranks")
    add_calibration_options(ap)
    args = ap.parse_args()
    clips, sources = calibration_clips(args)
    teacher, start = whisper.load("tiny.en"), whisper.load(args.start)
    source = dataclasses.replace(teacher, model=densified(teacher.model, start.model))
    stats = calibrate(source, clips)
    eig = spectra(stats)
    plan = target_plan(source, stats, eig, Budget("params", args.target), args.allocation, clips)
    lite = compress_(copy.deepcopy(source.model), stats, plan, eig)
    report = heal(teacher, lite, clips, HealConfig())
    print(report.summary())
    command = "python research/healing/progressive.py " + " ".join(sys.argv[1:])
    save_checkpoint(lite, teacher.processor, args.output,
                    Provenance("tiny.en", encoder_cost(teacher.model), f"{len(clips)} clips of {' + '.join(sources)}",
                               plan.method + f", progressive from {args.start}, healed against tiny.en", command))
    cost = encoder_cost(lite)
    print(f"wrote {args.output}: encoder linear params {cost.linear_params:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
