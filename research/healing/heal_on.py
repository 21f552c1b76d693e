"""Heal a compressed start on named audio with the 0.6 recipe, on the CPU: for two questions about
where healing's limit lies that the calibration-only recipe cannot answer.

    python research/healing/heal_on.py START -o OUT --heal-on DATA [DATA ...] [--steps 500] [--seed 0]

1. A diagnostic, never a recipe: heal on the evaluation audio itself. Healing is label-free (the dense
   model's encoder output is the target; no transcript is read), so it can run on the very clips WER is
   measured on. Such a model shows what the ranks can carry once healing has heard every evaluation voice:
   near dense, the limit of the real recipe is how healing generalizes to new voices; as far from dense
   as the recipe, it is the capacity of the ranks or the healing objective. Nothing the project chooses
   may depend on it: it has heard the test audio.

       python research/healing/heal_on.py runs/refine/pcasens-0.6 -o runs/refine/oracle-0.6 \
           --heal-on ../shared/data/speech/librispeech_other runs/refine/speechocean_train_heldout

2. A cross-fit: the evaluation speakers split in two folds (research/healing/speaker_split.py); each fold's
   audio joins the recipe's healing clips, and the model healed with one fold scores only the other's
   utterances (`refine_eval.py --crossfit`). Every utterance is still from a voice its model never
   heard; what changes is that healing heard other speakers of the evaluation sets' own kind, as a user
   healing on unlabeled audio of their own deployment would. With folds from `speaker_split.py --by
   utterance` (and `refine_eval.py --unheard utterance`), healing heard the same speakers' other utterances.

       python research/healing/heal_on.py runs/refine/pcasens-0.6 -o runs/refine/foldA-0.6 \
           --heal-on .bundle06x/calib runs/fold/speechocean_train_heldout_calib runs/fold/librispeech_other_calib

The healing is the 0.6 recipe's (research/healing/heal_gpu.py variant 19: end to end on the encoder output,
500 steps of 4 windows at lr 1e-4, early stopping on 12.5% of the clips held out).
"""

import argparse
import json
import sys
from pathlib import Path

from heal_gpu import VARIANTS, heal_config

from liteasr.models import whisper
from liteasr.data.audio import audio_hash, read_dataset
from liteasr.checkpoint import Provenance, save_checkpoint
from liteasr.errors import UserError
from liteasr.planning.flops import encoder_cost
from variants import heal_variant as heal  # noqa: E402  (the recipe's variant fields)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("start", help="a compressed checkpoint (unhealed factors, e.g. `compress --refine none`)")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--heal-on", nargs="+", required=True, metavar="DATA", help="manifests or folders of the audio to heal on")
    ap.add_argument("--base", default="tiny.en", help="the dense model the start was compressed from")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    card = Path(args.start) / "liteasr.json"
    if not card.is_file():
        raise SystemExit(f"heal_on.py: {args.start} is not a liteasr checkpoint (compress it with --refine none first)")
    meta = json.loads(card.read_text())
    try:
        clips = [c for data in args.heal_on for c in read_dataset(data).clips]
        teacher, loaded = whisper.load(args.base), whisper.load(args.start)
    except UserError as exc:
        raise SystemExit(f"heal_on.py: {exc}") from None
    config = heal_config(dict(VARIANTS["19"], steps=args.steps, seed=args.seed))
    report = heal(teacher, loaded.model, clips, config)
    print(report.summary())
    prov = Provenance(meta["base_model"], encoder_cost(teacher.model),
                      f"{meta['calibration']}; healed on {len(clips)} clips of {' + '.join(args.heal_on)}",
                      f"{meta['method']}, healed (0.6 recipe, seed {args.seed}) by research/healing/heal_on.py",
                      "research/healing/heal_on.py " + " ".join(sys.argv[1:]),
                      sorted(set(meta["calibration_hashes"]) | {audio_hash(c) for c in clips}))
    save_checkpoint(loaded.model, loaded.processor, Path(args.output), prov, overwrite=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
