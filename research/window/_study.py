"""What research/window's development studies share: their options and their development draws."""

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from _common import multilingual_splits, speech_or_exit  # benchmarks/: each study puts it on sys.path first
from liteasr.atomic import atomic_dir
from liteasr.evaluation.report import load_eval_sets
from liteasr.models import whisper
from liteasr.refine import WINDOW_HEAL
from liteasr.refine.window import heal_window


def add_study_args(p: argparse.ArgumentParser, json_default: str) -> None:
    p.add_argument("--floor", type=float, default=5.0, help="shortest window, seconds (benchmarks/window.py's)")
    p.add_argument("--samples", type=int, default=80, help="development clips per set (seed 0)")
    p.add_argument("--work", type=Path, default=Path("runs/window"), help="benchmarks/window.py's --work")
    p.add_argument("--json", type=Path, default=Path(json_default))


def start_study(p: argparse.ArgumentParser, json_default: str) -> tuple[argparse.Namespace, Path, dict, float]:
    """The study's options (with add_study_args) parsed, the shared speech folder (or a clear exit), the
    speechocean / nemo speaker splits in --work, and the start time."""
    add_study_args(p, json_default)
    args = p.parse_args()
    speech, started = speech_or_exit(), time.time()
    return args, speech, multilingual_splits(speech, args.work), started


def development_sets(speech: Path, split: dict, samples: int) -> list:
    """research/window/steps.py's development draws: seed 0 of librispeech_other and speechocean's other
    speakers (benchmarks/window.py reports on seed 1)."""
    return load_eval_sets([str(speech / "librispeech_other"), str(split["speechocean_heldout"])], samples, seed=0)


def benchmark_sets(speech: Path, split: dict, samples: int) -> list:
    """benchmarks/window.py's test draws: seed 1 of the same two sets (a study that reports on them too)."""
    return load_eval_sets([str(speech / "librispeech_other"), str(split["speechocean_heldout"])], samples, seed=1)


def healed_window_models(work: Path, floor: float) -> dict[str, tuple[str, Path]]:
    """benchmarks/window.py's models healed for the window that `work` holds: name -> (the model each was healed
    from, as a spec; its directory). A missing one is reported and left out."""
    models = {"dense tiny.en": ("tiny.en", work / f"tiny.en-window-{floor:g}"),
              "0.7 (default compression)": (str(work / "tiny.en-0.7"), work / f"tiny.en-0.7-window-{floor:g}")}
    present = {}
    for name, (padded, healed) in models.items():
        if (healed / "config.json").is_file():
            present[name] = (padded, healed)
        else:
            print(f"{name}: skipped, {healed} is missing (benchmarks/window.py makes it)", flush=True)
    return present


def heal_lite_for_window(lite: Path | str, teacher: str | None, clips: list, policy, out: Path, seed: int = 0,
                         steps: int = WINDOW_HEAL.steps) -> dict:
    """The lite checkpoint `lite` (or a dense model's spec, such as "tiny.en") healed for `policy`'s windows with refine.WINDOW_HEAL (with `seed`: its
    held-out split and window order; `steps`: its length, the cosine ending there) against `teacher` (a model
    spec; None: `lite` itself on its padded window), one run (a study's seeds are its runs; seeds.py makes the
    soups), every step (no time budget: on a slow machine the
    budget would end runs early and make them differ in more than what a study varies), saved to `out` with
    its window_heal.json; an existing `out` is reused. Returns that JSON's contents."""
    if not (out / "config.json").is_file():
        t0 = time.time()
        student = whisper.load(str(lite))  # the teacher's targets are computed before the student moves
        report = heal_window(whisper.load(teacher) if teacher else student, student.model, clips, policy,
                             dataclasses.replace(WINDOW_HEAL, minutes=None, seed=seed, steps=steps, seeds=1))
        student.model.config.liteasr_window = policy.to_dict()
        save_healed(student, lite, out, {"loss": report.e2e_loss, "steps": report.steps,
                                         "minutes": (time.time() - t0) / 60, "seed": seed,
                                         "schedule_steps": steps})
    return json.loads((out / "window_heal.json").read_text())


def save_healed(student, lite: Path | str, out: Path, meta: dict) -> None:
    """`student` (a loaded model healed from the checkpoint `lite`) saved to `out` as a copy of `lite` (a lite
    checkpoint's model code and card; a dense spec such as "tiny.en" has none to copy) with the student's weights
    and config, and `meta` as window_heal.json; atomically."""
    with atomic_dir(out) as tmp:
        if Path(lite).is_dir():
            shutil.copytree(lite, tmp, dirs_exist_ok=True)
        student.model.save_pretrained(tmp)
        student.processor.save_pretrained(tmp)
        (tmp / "window_heal.json").write_text(json.dumps(meta))
