"""`liteasr demo`: the whole job on the embedded default, bundled tiny.en.

Calibrate on real speech from ../shared when present (vctk_p239), else on speech synthesized
with espeak-ng; compress at a few thresholds; evaluate base and compressed models side by side.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from liteasr.data.audio import draw, read_dataset, read_sources
from liteasr.data.demo_audio import make_demo_audio
from liteasr.evaluation.report import evaluate_models, print_table
from liteasr.models import whisper
from liteasr.models.sources import cache_dir
from liteasr.pipeline import DEFAULT_TARGET_PARAMS, PAPER_RULE, CompressConfig, calibrate_and_plan, finish, plan_ranks

MODEL = "tiny.en"
CALIBRATION = ("librispeech_calib", "vctk_p239", "cathy_arctic")


def shared_speech() -> Path | None:
    """../shared/data/speech beside the checkout (or $LITEASR_SHARED), if it is there."""
    candidates = [os.environ.get("LITEASR_SHARED"), Path.cwd().parent / "shared",
                  Path(__file__).resolve().parents[3] / "shared"]
    for c in candidates:
        if c and (Path(c) / "data" / "speech").is_dir():
            return Path(c) / "data" / "speech"
    return None


def demo_data(eval_samples: int) -> tuple[list[str], list]:
    from liteasr.evaluation.report import load_eval_sets

    speech = shared_speech()
    if speech is not None:  # many voices in, other voices out: calibration and evaluation speakers are disjoint
        return [str(speech / s) for s in CALIBRATION], load_eval_sets(
            [str(speech / "librispeech_other"), str(speech / "speechocean_train")], eval_samples, seed=0)
    manifest = make_demo_audio(cache_dir() / "demo_audio")
    data = read_dataset(manifest)
    # Disjoint halves: calibrate on the first, evaluate on the second.
    half = len(data.clips) // 2
    data.clips, held_out = data.clips[:half], data.clips[half:]
    data.name = "espeak_eval"
    calibration = cache_dir() / "demo_audio_calibration.jsonl"
    calibration.write_text("".join(f'{{"audio": "{c.path}", "text": ""}}\n' for c in data.clips))
    data.clips = held_out
    return [str(calibration)], [data]


def run_demo(device: str = "cpu", samples: int = 64, eval_samples: int = 40,
             thresholds: list[str] = (PAPER_RULE,), targets: list[float] = (DEFAULT_TARGET_PARAMS,),
             output: str | None = None) -> list[dict]:
    """Paper rule at `thresholds` vs liteasr's measured-damage allocation at `targets`, through the library's
    `calibrate_and_plan` and `finish` (one calibration shared by every point)."""
    calibration, eval_sets = demo_data(eval_samples)
    print(f"model {MODEL}; calibration {', '.join(calibration)}; evaluation "
          + ", ".join(f"{d.name} ({len(d.clips)} clips)" for d in eval_sets))
    base = whisper.load(MODEL, device=device)
    clips = draw(read_sources(calibration), samples, seed=0)
    # the calibration, planned by the paper's rule (no damage probes: every point below plans anew)
    planned = calibrate_and_plan(base, clips, CompressConfig(threshold=PAPER_RULE, calibration_samples=samples),
                                 f"{len(clips)} clips of {', '.join(calibration)}")
    # plain PCA factors: healing (the default of `compress --target-params`) alone takes 15 minutes on
    # 2 cores, more than the whole demo may; the recorded command says so, so it rebuilds this model
    points = [(f"threshold-{t.replace(':', '_')}", f"--threshold {t}", CompressConfig(threshold=t, refine="none"))
              for t in thresholds]
    points += [(f"target-params-{f}", f"--target-params {f} --refine none",
                CompressConfig(target_params=f, refine="none")) for f in targets]
    out = Path(output) if output else Path(tempfile.mkdtemp(prefix="liteasr-demo-"))
    paths = []
    for name, flags, config in points:
        plan = plan_ranks(base, planned.stats, config, clips, planned.eig)
        lite = finish(replace(planned, plan=plan), config, "none", keep_dense=True)
        path = out / f"tiny.en-lite-{name}"
        lite.save(path, overwrite=True, command=f"liteasr compress {MODEL} {flags}")
        paths.append(str(path))
    results = evaluate_models([MODEL, *paths], eval_sets, device=device)
    print()
    print_table(results)
    print(f"\ncheckpoints in {out}\n(the demo's compressed models are plain PCA factors; `liteasr compress "
          f"{MODEL} --calibration DATA` (0.7 by default, or --target-params F) also heals them, up to 15 more "
          "minutes: research/healing/refine.md)")
    return results
