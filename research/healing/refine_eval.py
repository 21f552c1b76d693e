"""Paired comparison of the checkpoints research/healing/refine.py wrote: every model against dense tiny.en
and the corrections against plain PCA, ΔWER with 95% paired-bootstrap intervals.

    python research/healing/refine_eval.py [--work runs/refine] [--target 0.7] [--samples 50] [--methods ...]
        [--average NAME=METHOD,METHOD,... ...]

`--average` compares recipes rather than single checkpoints: the same recipe healed with several seeds
counts each utterance's errors as their mean over the seeds, so one lucky or unlucky run does not decide;
a last column's interval resamples the seeds too.

`--crossfit` scores checkpoints healed on some of the evaluation speakers (research/healing/speaker_split.py
folds, research/healing/heal_on.py): each run is several checkpoints joined by '+', and each utterance is scored
by the ones that heard none of its speaker's audio (read from their provenance and the sets' `speaker`
fields), so every utterance is still one from a voice healing never heard (`--unheard utterance`: by the
ones that did not hear the utterance itself). Such runs join the recipe table.

Each model's per-utterance errors are cached in --work (keyed by checkpoint and clip count), so adding a
method re-evaluates only that method; delete the cache files after rebuilding a checkpoint.
"""

import sys
import argparse
import json
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the benchmarks' _common
from _common import speech_or_exit  # noqa: E402

from liteasr.models import whisper
from liteasr.data.audio import audio_hash
from liteasr.evaluation.evaluate import evaluate_dataset, paired_bootstrap, pooled_wer, recipe_bootstrap
from liteasr.evaluation.report import load_eval_sets


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="runs/refine")
    ap.add_argument("--target", default="0.7")
    ap.add_argument("--samples", type=int, default=50, help="seeded clips per evaluation set")
    ap.add_argument("--methods", nargs="*", default=["pca", "refit", "pcaheal", "heal"],
                    help="checkpoint names in --work are METHOD-TARGET")
    ap.add_argument("--sets", nargs="+", help="evaluation manifests (default: librispeech_other, speechocean_train)")
    ap.add_argument("--average", nargs="+", default=[], metavar="NAME=METHOD,...",
                    help="recipes: each utterance's errors averaged over these methods' checkpoints (e.g. seeds); "
                    "compared with dense and with the first recipe")
    ap.add_argument("--crossfit", nargs="+", default=[], metavar="NAME=A+B,...",
                    help="recipes whose runs are cross-fitted: checkpoints joined by '+', each scoring only the "
                    "utterances of speakers it never heard")
    ap.add_argument("--unheard", choices=("speaker", "utterance"), default="speaker",
                    help="what a --crossfit checkpoint must not have heard to score an utterance: its speaker "
                    "(default) or the utterance itself (adaptation to known voices: speaker_split.py --by utterance)")
    args = ap.parse_args()
    speech = speech_or_exit()
    work = Path(args.work)
    paths = [Path(p) for p in args.sets or [speech / "librispeech_other", speech / "speechocean_train"]]
    sets = [s for path in paths for s in load_eval_sets([str(path)], args.samples, seed=0)]
    recipes, crossfit = parse_recipes(args.average), parse_recipes(args.crossfit)
    averaged = [m for methods in recipes.values() for m in methods]
    averaged += [p for runs in crossfit.values() for run in runs for p in run.split("+")]
    missing = [m for m in averaged if not (work / f"{m}-{args.target}").is_dir()]
    if missing:
        raise SystemExit(f"refine_eval.py: --average or --crossfit names checkpoints that {work} lacks: "
                         + ", ".join(f"{m}-{args.target}" for m in missing))
    methods = list(dict.fromkeys(args.methods + averaged))  # a recipe's checkpoints are evaluated too
    models = [("dense tiny.en", "tiny.en")] + [(f"{m} {args.target}", str(work / f"{m}-{args.target}"))
                                              for m in methods if (work / f"{m}-{args.target}").is_dir()]
    errors, t0 = {}, time.time()
    for label, spec in models:
        cache = work / f"errors-{Path(spec).name}-{args.samples}.json"
        known = json.loads(cache.read_text()) if cache.is_file() else {}
        loaded = None
        for ds in sets:
            if ds.name not in known:
                loaded = loaded or whisper.load(spec)
                r = evaluate_dataset(loaded, ds, progress=False)
                known[ds.name] = (r.wer, [(t["errors"], t["words"]) for t in r.transcripts])
                print(f"{label} {ds.name} WER {r.wer:.2f} ({time.time() - t0:.0f} s)", flush=True)
            errors[label, ds.name] = tuple(known[ds.name])
        cache.write_text(json.dumps(known))
    runs = list(dict.fromkeys(run for r in crossfit.values() for run in r))
    for run in runs:
        errors.update(cross_fitted(run, sets, paths, errors, work, args.target, args.unheard))
    recipes.update(crossfit)
    rows = [(f"{ds.name} ({len(ds.clips)})", ds.name) for ds in sets]
    if len(sets) > 1:
        # every set's utterances as one corpus: the tightest interval the development data allows
        pooled = f"all {sum(len(ds.clips) for ds in sets)} utterances"
        for label in [m for m, _ in models] + [f"{run} {args.target}" for run in runs]:
            e = [u for ds in sets for u in errors[label, ds.name][1]]
            errors[label, pooled] = (pooled_wer(e), e)
        rows.append((pooled, pooled))
    pca = f"pca {args.target}"
    lines = ["| set | model | WER | ΔWER vs dense [95% CI] | ΔWER vs PCA [95% CI] |", "|---|---|---:|---|---|"]
    for row, name in rows:
        for label, _ in models:
            wer, e = errors[label, name]
            cells = []
            for ref in ("dense tiny.en", pca):
                if label == ref or (ref, name) not in errors or (ref == pca and label == "dense tiny.en"):
                    cells.append("")
                    continue
                d = paired_bootstrap(errors[ref, name][1], e)
                cells.append(f"{d.delta:+.2f} [{d.low:+.2f}, {d.high:+.2f}]")
            lines.append(f"| {row} | {label} | {wer:.2f} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if recipes:
        print(recipe_table(errors, rows, recipes, args.target))
    (work / f"eval-{args.target}.json").write_text(json.dumps({f"{k[0]}|{k[1]}": v for k, v in errors.items()}))
    return 0


def cross_fitted(run: str, sets, paths: list[Path], errors: dict, work: Path, target: str,
                 unheard: str = "speaker") -> dict:
    """One cross-fitted run's per-utterance errors on every set: each utterance's errors are the mean over
    the run's checkpoints that heard no clip of its speaker (`unheard="utterance"`: that did not hear the
    utterance itself). A checkpoint heard the evaluation clips whose audio hashes its provenance lists."""
    parts = run.split("+")
    clips = [c for ds in sets for c in ds.clips]
    utterances = [str(Path(c.path).resolve()) for c in clips]
    hashes = {u: audio_hash(c) for u, c in zip(utterances, clips)}
    unit = {u: u for u in utterances}  # what a checkpoint must not have heard
    if unheard == "speaker":
        speaker = {}
        for path in paths:  # one evaluation set each
            manifest = path / "manifest.jsonl" if path.is_dir() else path
            rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
            speaker.update({str((manifest.parent / r["audio"]).resolve()): r.get("speaker") for r in rows})
        if any(speaker.get(u) is None for u in utterances):
            raise SystemExit("refine_eval.py: --crossfit needs a `speaker` for every evaluation clip (manifest field)")
        unit = {u: speaker[u] for u in utterances}
    heard = {}
    for p in parts:
        healed_on = set(json.loads((work / f"{p}-{target}" / "liteasr.json").read_text())["calibration_hashes"])
        heard[p] = {unit[u] for u in utterances if hashes[u] in healed_on}
    out = {}
    for ds in sets:
        utts = []
        for i, clip in enumerate(ds.clips):
            scorers = [p for p in parts if unit[str(Path(clip.path).resolve())] not in heard[p]]
            if not scorers:
                raise SystemExit(f"refine_eval.py: --crossfit {run}: every checkpoint heard the {unheard} of {clip.path}")
            e = [errors[f"{p} {target}", ds.name][1][i] for p in scorers]
            utts.append((sum(x[0] for x in e) / len(e), e[0][1]))
        out[f"{run} {target}", ds.name] = (pooled_wer(utts), utts)
    return out


def parse_recipes(specs: list[str]) -> dict[str, list[str]]:
    """NAME=METHOD,METHOD,... -> {NAME: [METHOD, ...]}, in the order given."""
    recipes = {}
    for spec in specs:
        name, _, methods = spec.partition("=")
        if not name or not methods:
            raise SystemExit(f"refine_eval.py: --average wants NAME=METHOD,METHOD,..., got {spec!r}")
        recipes[name] = [m for m in methods.split(",") if m]
    return recipes


def recipe_table(errors: dict, rows: list[tuple[str, str]], recipes: dict[str, list[str]], target: str) -> str:
    """ΔWER of seed-averaged recipes against dense tiny.en and against the first recipe, per set. The last
    column's interval also resamples each recipe's checkpoints (recipe_bootstrap): the spread between
    seeds, which the utterance bootstrap alone does not see (research/healing/refine.md, "nine seeds")."""
    groups = {name: [f"{m} {target}" for m in methods] for name, methods in recipes.items()}
    first = next(iter(groups))
    lines = ["", f"| set | recipe (checkpoints averaged) | WER | ΔWER vs dense [95% CI] | ΔWER vs {first} [95% CI] "
             f"| ΔWER vs {first} [95% CI, checkpoints resampled too] |", "|---|---|---:|---|---|---|"]
    for row, name in rows:
        runs = {recipe: [errors[label, name][1] for label in labels] for recipe, labels in groups.items()}
        mean = {recipe: [(sum(u[0] for u in utt) / len(r), utt[0][1]) for utt in zip(*r)]
                for recipe, r in runs.items()}
        for recipe, e in mean.items():
            cells = [paired_bootstrap(errors["dense tiny.en", name][1], e)]
            cells += ([paired_bootstrap(mean[first], e), recipe_bootstrap(runs[first], runs[recipe])]
                      if recipe != first else [None, None])
            text = [f"{d.delta:+.2f} [{d.low:+.2f}, {d.high:+.2f}]" if d else "" for d in cells]
            lines.append(f"| {row} | {recipe} ({len(groups[recipe])}) | {pooled_wer(e):.2f} | " + " | ".join(text) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
