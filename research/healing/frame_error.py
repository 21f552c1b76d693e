"""Where a compressed encoder's output error sits: speech frames vs the 30 s window's padding.

    python research/healing/frame_error.py CHECKPOINT [CHECKPOINT ...] [--base tiny.en] [--clips 12] [--data DATA ...]

Short clips are transcribed as one window padded to 30 s, so most of its 1500 encoder frames are
padding. For each checkpoint: the relative squared error of the encoder output against the dense
model's (as healing measures it) over all frames, over the speech frames only, over the padding
only, and the share of the error that falls on speech frames. Clips: seeded, from vctk_p239 and
cathy_arctic (speakers in no calibration or healing set here), each padded alone; `--data` names other sets.
"""

import sys
from pathlib import Path
import argparse

import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the benchmarks' _common
from _common import speech_or_exit  # noqa: E402

from liteasr.models import whisper
from liteasr.data.audio import load_audio, read_dataset, sample
from liteasr.refine.heal import relative_error


def encode(model, feats, batch=4):
    with torch.inference_mode():
        return torch.cat([whisper.encoder_output(model, feats[i:i + batch]) for i in range(0, len(feats), batch)]).double()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--base", default="tiny.en")
    ap.add_argument("--clips", type=int, default=12, help="seeded clips per set (default 12)")
    ap.add_argument("--data", nargs="+", help="sets to draw the clips from (default: vctk_p239, cathy_arctic)")
    args = ap.parse_args()
    speech = speech_or_exit()
    sets = args.data or [speech / "vctk_p239", speech / "cathy_arctic"]
    clips = [c for data in sets for c in sample(read_dataset(data).clips, args.clips, seed=3)]
    audios = [load_audio(c) for c in clips]
    dense = whisper.load(args.base)
    feats = whisper.features(dense.processor, audios)
    ref = encode(dense.model, feats)
    frames = torch.tensor([whisper.speech_frames(len(a)) for a in audios])
    is_speech = torch.arange(ref.shape[1])[None] < frames[:, None]
    print(f"{len(clips)} clips, {is_speech.float().mean():.0%} of their frames speech")
    print("| checkpoint | all frames | speech frames | padding frames | share of the error on speech |")
    print("|---|---:|---:|---:|---:|")
    for spec in args.checkpoints:
        out = encode(whisper.load(spec).model, feats)
        err = (out - ref).pow(2).sum(-1)
        rel = [float(relative_error(out, ref, w)) for w in (None, is_speech.double(), (~is_speech).double())]
        print(f"| {spec} | {rel[0]:.4f} | {rel[1]:.4f} | {rel[2]:.4f} | {float(err[is_speech].sum() / err.sum()):.2f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
