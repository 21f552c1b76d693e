"""The size sweep of refine.md as a plot: ΔWER against dense tiny.en (95% paired-bootstrap interval) vs
the fraction of encoder linear parameters kept, one panel per evaluation set and one for both sets as one
corpus, one line per method.

    python research/healing/refine_plot.py [--work runs/refine] [--samples 100] [--methods pca refit mixheal10 paper]
                                     [--out research/healing/refine]
    python research/healing/refine_plot.py --samples 1000 --methods cpudefault cpusens cpuvoices575 soup19 \
        --out research/healing/refine-311        # every held-out utterance: the end-to-end recipes of refine.md

Reads the per-utterance error caches refine_eval.py leaves in --work (`errors-<METHOD>-<SIZE>-<N>.json`,
`errors-tiny.en-<N>.json`); writes OUT.json (the points) and OUT.png. Points whose WER is off the chart
(looping models) are drawn at its top edge with their value written beside them.
"""

import argparse
import json
import re
from pathlib import Path

from liteasr.evaluation.evaluate import paired_bootstrap, pooled_wer

LABELS = {"pca": "PCA (paper's factors)", "refit": "anchored refit", "mixheal10": "PCA + healing (default)",
          "paper": "paper rule at the same size",
          "cpudefault": "default compress (2 CPU cores)", "cpusens": "--allocation sensitivity",
          "cpuvoices575": "sensitivity + --heal-data, 3-seed soup (CPU, 1 h)", "soup19": "3-seed soup, 575 clips (GPU)"}
POOLED = "pooled"  # both sets as one corpus
SET_NAMES = {"librispeech_other": "librispeech_other (10 speakers)",
             "speechocean_train_heldout": "speechocean, 55 held-out speakers",
             POOLED: "both sets as one corpus"}
TOP = 30.0  # ΔWER axis limit: beyond it a model loops, and the exact value is written, not drawn


def pooled(results) -> tuple[float, list]:
    """(corpus WER, per-utterance errors) of several sets' results taken as one corpus."""
    errors = [u for _, e in results for u in e]
    return pooled_wer(errors), errors


def points(work: Path, methods: list[str], samples: int, sets=tuple(SET_NAMES)[:2]) -> list[dict]:
    dense = json.loads((work / f"errors-tiny.en-{samples}.json").read_text())
    out = []
    for path in sorted(work.glob(f"errors-*-{samples}.json")):
        m = re.fullmatch(rf"errors-(.+)-(0\.\d+)-{samples}\.json", path.name)
        if not m or m[1] not in methods:
            continue
        known = {name: v for name, v in json.loads(path.read_text()).items() if name in dense and name in sets}
        if len(known) == len(sets) > 1:  # every set's utterances as one corpus: the tightest interval
            known[POOLED] = pooled(known.values())
            dense_pooled = pooled(dense[name] for name in sets)
        for name, (wer, errors) in known.items():
            ref = dense_pooled if name == POOLED else dense[name]
            d = paired_bootstrap(ref[1], errors)
            out.append({"method": m[1], "kept": float(m[2]), "set": name, "wer": wer, "n": len(errors),
                        "delta": d.delta, "low": d.low, "high": d.high, "dense_wer": ref[0]})
    return sorted(out, key=lambda p: (p["set"], p["method"], p["kept"]))


def draw(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [name for name in SET_NAMES if any(r["set"] == name for r in rows)]
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4.2), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], sets):
        for i, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
            pts = [r for r in rows if r["set"] == name and r["method"] == method]
            if not pts:
                continue
            x = [p["kept"] + 0.004 * (i - 1) for p in pts]  # side by side, so intervals do not hide each other
            y = [min(p["delta"], TOP) for p in pts]
            lo = [y_ - min(p["low"], TOP) for p, y_ in zip(pts, y)]
            hi = [min(p["high"], TOP) - y_ for p, y_ in zip(pts, y)]
            line = ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=LABELS.get(method, method))
            for p, y_ in zip(pts, y):
                if p["delta"] > TOP:
                    ax.annotate(f"+{p['delta']:.0f}", (p["kept"] + 0.004 * (i - 1), y_), textcoords="offset points", xytext=(4, -10 - 9 * i),
                                fontsize=8, color=line[0].get_color())
        ax.axhline(0, color="black", lw=0.8)
        for kept, goal in ((0.7, 0.5), (0.6, 1.0), (0.5, 2.0)):
            ax.plot([kept - 0.02, kept + 0.02], [goal, goal], color="grey", lw=3, alpha=0.7)
        ax.set_ylim(-8, min(TOP, max(r["high"] for r in rows)) + 2)  # no empty band above the points
        ax.set_xlabel("encoder linear parameters kept")
        count = max(r["n"] for r in rows if r["set"] == name)
        ax.set_title(f"{SET_NAMES.get(name, name)}, {count} utterances", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("ΔWER vs dense tiny.en (95% CI)")
    axes[0][0].legend(fontsize=8, title="grey bars: issue goal", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("runs/refine"))
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--methods", nargs="+", default=["pca", "refit", "mixheal10", "paper"])
    ap.add_argument("--out", type=Path, default=Path("research/healing/refine"))
    args = ap.parse_args()
    rows = points(args.work, args.methods, args.samples)
    if not rows:
        raise SystemExit(f"no errors-<METHOD>-<SIZE>-{args.samples}.json caches for {args.methods} in {args.work}")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    draw(rows, args.out.with_suffix(".png"))
    for r in rows:
        print(f"{r['set']:28s} {r['method']:10s} {r['kept']:.2f} WER {r['wer']:6.2f}  "
              f"Δ {r['delta']:+7.2f} [{r['low']:+.2f}, {r['high']:+.2f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
