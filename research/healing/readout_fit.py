"""Closed-form readout correction: the affine map e -> A e + c that brings a compressed encoder's output
closest to the dense model's (least squares over calibration frames, float64, ridge chosen on held-out
calibration windows), folded into the decoder's cross-attention key and value projections:
W_k <- W_k A, W_v <- W_v A, b_v <- b_v + W_v c (a key bias W_k c would shift every score of a query
equally, which the softmax ignores). The encoder and the checkpoint format do not change.

    python research/healing/readout_fit.py runs/refine/cpudefault-0.6 --output runs/refine/readout-0.6

Prints the relative encoder-output error (as healing measures it) before and after, on held-out
calibration windows and on voices in no calibration set (vctk_p239, cathy_arctic); compare WER with
`liteasr eval` (research/healing/refine.md).
"""

import argparse
import shutil
import tempfile
from pathlib import Path

import torch
from _calibration import add_calibration_options, calibration_clips, speech_or_exit  # noqa: E402  (beside this script)

from liteasr.models import whisper
from liteasr.data.audio import read_dataset, sample
from liteasr.refine.heal import relative_error
from liteasr.refine.lockstep import split_clips, window_features
from liteasr.refine.refit import RegressionStats

RIDGES = (1e-6, 1e-4, 1e-2, 1e-1)


def outputs(dense, lite, clips):
    """(compressed, dense) encoder outputs per batch of windows."""
    return [(whisper.encoder_output(lite.model, f), whisper.encoder_output(dense.model, f))
            for f in window_features(dense, clips)]


def sums(pairs) -> RegressionStats:
    """G = sum x~ x~^T and C = sum x~ [e_dense, 1]^T over all frames, x~ = [e_compressed, 1] (float64)."""
    stats = RegressionStats(pairs[0][0].shape[-1])
    for compressed, dense in pairs:
        stats.add(compressed, dense)
    return stats


def fit(stats: RegressionStats, ridge: float) -> torch.Tensor:
    """[A^T; c^T] ([d + 1, d]), ridge-anchored at the identity map."""
    d = len(stats.gram) - 1
    identity = torch.cat([torch.eye(d, dtype=torch.float64), torch.zeros(1, d, dtype=torch.float64)])
    g, h = stats.gram / stats.count, stats.cross[:, :d] / stats.count  # C without its constant column
    lam = ridge * float(g.diagonal().mean())
    return torch.linalg.solve(g + lam * torch.eye(d + 1, dtype=torch.float64), h + lam * identity)


def error(pairs, m=None):
    total = 0.0
    for compressed, dense in pairs:
        out = compressed if m is None else (torch.cat([compressed, torch.ones(*compressed.shape[:2], 1)], -1).double()
                                            @ m).float()
        total += float(relative_error(out, dense))
    return total / len(pairs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a liteasr checkpoint of tiny.en")
    ap.add_argument("--output", required=True)
    add_calibration_options(ap)
    args = ap.parse_args()
    speech = speech_or_exit()
    dense, lite = whisper.load("tiny.en"), whisper.load(args.model)
    fitted, held = split_clips(calibration_clips(args)[0], 0.125, 0)
    unseen = [c for name in ("vctk_p239", "cathy_arctic") for c in sample(read_dataset(speech / name).clips, 12, seed=0)]
    fit_pairs, held_pairs, unseen_pairs = (outputs(dense, lite, c) for c in (fitted, held, unseen))
    print(f"before: held-out calibration {error(held_pairs):.4f}, unseen voices {error(unseen_pairs):.4f}")
    fitted_sums = sums(fit_pairs)
    scores = {r: error(held_pairs, fit(fitted_sums, r)) for r in RIDGES}
    ridge = min(scores, key=scores.get)
    for r, s in scores.items():
        print(f"ridge {r:g}: held-out calibration {s:.4f}")
    m = fit(fitted_sums + sums(held_pairs), ridge)  # the final fit uses every calibration clip
    print(f"ridge {ridge:g}, fitted on all clips: unseen voices {error(unseen_pairs, m):.4f}")
    a, c = m[:-1].T, m[-1]
    with torch.no_grad():
        for layer in lite.model.model.decoder.layers:
            attention = layer.encoder_attn
            w_k, w_v = attention.k_proj.weight.double(), attention.v_proj.weight.double()
            attention.k_proj.weight.copy_((w_k @ a).float())
            attention.v_proj.bias.copy_((attention.v_proj.bias.double() + w_v @ c).float())
            attention.v_proj.weight.copy_((w_v @ a).float())
    out = Path(args.output)
    shutil.copytree(args.model, out)  # card, config, tokenizer, modeling code; only the weights change
    with tempfile.TemporaryDirectory() as tmp:
        lite.model.save_pretrained(tmp)
        shutil.copy(Path(tmp) / "model.safetensors", out / "model.safetensors")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
