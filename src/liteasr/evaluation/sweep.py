"""One calibration, many compressions, each evaluated: the WER / size / speed table and its Pareto front."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from dataclasses import replace
from pathlib import Path

from liteasr.atomic import atomic_dir
from liteasr.calibration.calibrate import DEFAULT_PACKING
from liteasr.data.audio import Clip, audio_hash, draw, read_sources
from liteasr.distributed import current
from liteasr.errors import UserError
from liteasr.evaluation.report import evaluate_models, load_eval_sets
from liteasr.factorize.compress import measure_damage, target_plan, threshold_plan
from liteasr.models import whisper
from liteasr.planning.damage import DEFAULT_DAMAGE
from liteasr.planning.plan import ThresholdRule

REFINES = ("none", "refit", "heal")


def check_disjoint(calibration: list[Clip], evaluation: list[Clip]) -> None:
    """Calibration and evaluation must not share a file or the same audio under another name."""
    cal_paths = {c.path.resolve() for c in calibration}
    for c in evaluation:
        if c.path.resolve() in cal_paths:
            raise UserError(f"{c.path} is in both the calibration and the evaluation data")
    cal_hashes = {audio_hash(c): c.path for c in calibration}
    for c in evaluation:
        h = audio_hash(c)
        if h in cal_hashes:
            raise UserError(f"{c.path} has the same audio as calibration clip {cal_hashes[h]}")


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """True for points not dominated (lower x and lower y are better)."""
    return [not any(ox <= x and oy <= y and (ox < x or oy < y) for ox, oy in points) for x, y in points]


def run_sweep(model: str, calibration: str | list[str], eval_data: list[str], thresholds: list[str], output: str | Path,
              samples: int = 64, eval_samples: int | None = None, seed: int = 0, device: str = "cpu",
              batch_size: int = 8, overwrite: bool = False, progress: bool = True,
              targets: list[float] = (), allocations: list[str] = (DEFAULT_DAMAGE,), target_kind: str = "params",
              rank_multiple: int = 16, packing: str = DEFAULT_PACKING, refines: list[str] = ("none",),
              heal_config=None, columns: tuple[str, str, str | None] = ("audio", "text", None),
              warn=print) -> list[dict]:
    """`compress` for many budgets from one calibration (the pipeline's functions, so every point is the
    checkpoint `compress` would write), each evaluated. Threshold points use plain PCA (the paper's
    setting); each budget point is built once per entry of `refines` (none, refit, heal); a damage
    model is measured once and shared by every budget."""
    from liteasr.pipeline import PAPER_RULE, CompressConfig, build, calibrate_and_plan
    from liteasr.planning.allocate import Budget
    from liteasr.refine import HealConfig

    for refine in refines:
        if refine not in REFINES:
            raise UserError(f"refine must be one of {', '.join(REFINES)}, got {refine!r}")
    rules = [ThresholdRule.parse(t, rank_multiple) for t in thresholds]
    budgets = [Budget(target_kind, t) for t in targets]
    cal_clips = draw(read_sources(calibration, *columns), samples, seed)
    sources = " + ".join(map(str, [calibration] if isinstance(calibration, (str, Path)) else calibration))
    eval_sets = load_eval_sets(eval_data, eval_samples, seed, columns)
    for ds in eval_sets:
        check_disjoint(cal_clips, ds.clips)
    main = current().is_main
    config = CompressConfig(threshold=thresholds[0] if thresholds else PAPER_RULE, rank_multiple=rank_multiple,
                            heal=heal_config or HealConfig(), packing=packing, calibration_samples=samples, seed=seed,
                            batch_size=batch_size)
    # under torchrun rank 0 builds the output; the others keep their (identical) checkpoints in a
    # private temporary folder, so no shared file system is needed
    with atomic_dir(output, overwrite=overwrite) if main else tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = whisper.load(model, device=device)
        planned = calibrate_and_plan(base, cal_clips, config, describe=f"{len(cal_clips)} clips of {sources}",
                                     warn=warn if main else (lambda _: None))
        stats, eig = planned.stats, planned.eig
        if main:
            stats.save(tmp / "stats.safetensors")
        points = [(f"threshold {text}", lambda rule=rule: threshold_plan(base.model, stats, rule, eig), "none")
                  for text, rule in zip(thresholds, rules)]
        tables = {}  # damage model -> measured once, shared by every budget

        def allocated(budget, damage):
            if damage not in tables:
                tables[damage] = measure_damage(base, stats, eig, damage, cal_clips, rank_multiple, progress=progress)
            return target_plan(base, stats, eig, budget, damage, multiple=rank_multiple, table=tables[damage])

        points += [(f"{damage} {b.kind} {b.fraction}" + ("" if r == "none" else f" {r}"),
                    lambda b=b, damage=damage: allocated(b, damage), r)
                   for damage in allocations for b in budgets for r in refines]
        paths, labels = [], []
        for label, make_plan, refine in points:
            lite = build(replace(planned, plan=make_plan()), config, refine, warn=warn if main else (lambda _: None),
                         keep_dense=True)
            path = tmp / label.replace(" ", "-").replace(":", "_")
            lite.save(path, command=f"liteasr sweep ({label})")
            lite.plan.save(path / "plan.json")
            paths.append(str(path))
            labels.append(label)
        results = evaluate_models([model, *paths], eval_sets, device=device, batch_size=batch_size, progress=progress)
        for r, label in zip(results, ["base", *labels]):
            r["label"] = label
            r["model"] = r["model"].replace(str(tmp), str(output))
        if main:
            write_table(results, tmp)
            plot(results, tmp / "sweep.png", title=f"{model}: calibrated on {len(cal_clips)} clips")
    return results


def write_table(results: list[dict], out: Path) -> None:
    (out / "sweep.json").write_text(json.dumps(results, indent=1))
    names = list(results[0]["datasets"])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["label", "model", "encoder_params", "encoder_gflops", "encoder_ms_b1", *[f"wer_{n}" for n in names],
                "average_wer", "pareto_params", "pareto_latency"])
    front_p = pareto_front([(r["encoder_params"], r["average_wer"]) for r in results])
    front_l = pareto_front([(r["encoder_ms"]["batch_1"], r["average_wer"]) for r in results])
    for r, fp, fl in zip(results, front_p, front_l):
        w.writerow([r["label"], r["model"], r["encoder_params"], f"{r['encoder_gflops']:.3f}",
                    f"{r['encoder_ms']['batch_1']:.1f}", *[f"{r['datasets'][n]['wer']:.2f}" for n in names],
                    f"{r['average_wer']:.2f}", fp, fl])
    (out / "sweep.csv").write_text(buf.getvalue())


def plot(results: list[dict], path: Path, title: str = "", second=None) -> None:
    """WER vs encoder parameters and WER vs `second` = (value of a result, axis label); by default
    the measured batch-1 encoder latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    second = second or (lambda r: r["encoder_ms"]["batch_1"], "measured encoder ms / 30 s window (batch 1)")
    for ax, key, xlabel in ((axes[0], lambda r: r["encoder_params"] / 1e6, "encoder parameters (M)"),
                            (axes[1], *second)):
        xs, ys = [key(r) for r in results], [r["average_wer"] for r in results]
        front = pareto_front(list(zip(xs, ys)))
        families = sorted({_family(r) for r in results} - {"base"})
        colors = dict(zip(families, ["tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown",
                                        "tab:cyan", "tab:olive", "tab:pink", "tab:gray"]))
        for x, y, r, on in zip(xs, ys, results, front):
            family = _family(r)
            base = family == "base"
            ax.scatter([x], [y], marker="*" if base else "o", s=140 if base else 40, zorder=3,
                       color="black" if base else colors[family], edgecolors="red" if on else "none",
                       label=None if base else family)
            ax.annotate(r.get("label", ""), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        fx = sorted((x, y) for x, y, on in zip(xs, ys, front) if on)
        ax.plot([p[0] for p in fx], [p[1] for p in fx], "--", color="tab:red", label="Pareto front")
        if max(ys) > 20 * max(min(ys), 1e-3):  # damaged models can reach WER of hundreds
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("average WER (%)")
        ax.grid(alpha=0.3)
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _family(result: dict) -> str:
    """A point's method without its size: "encoder params 0.7 heal" -> "encoder params heal"."""
    words = result.get("label", "").split(" ")
    if words[0] == "threshold":
        return "threshold"
    return " ".join(w for w in words if not w.replace(".", "", 1).isdigit())
