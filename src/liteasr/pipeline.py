"""The whole compression as one library call: calibrate -> plan -> factor -> refine, then save.

    import liteasr
    lite = liteasr.compress("tiny.en", ["speech/", "more.jsonl"], liteasr.CompressConfig(target_params=0.7))
    lite.save("tiny.en-lite")

`liteasr compress` (the CLI), the demo and the benchmarks call this; each stage is also a public function
of its own subpackage (calibration.calibrate, factorize.compress: spectra / target_plan / compress_,
refine.heal / refit, checkpoint.save_checkpoint).
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from liteasr.calibration.calibrate import DEFAULT_PACKING, calibrate
from liteasr.calibration.stats import CovarianceStats
from liteasr.checkpoint import Provenance, save_checkpoint
from liteasr.data.audio import Clip, draw, load_audio, read_sources, screen
from liteasr.distributed import current
from liteasr.errors import UserError
from liteasr.factorize.compress import check_stats, compress_, spectra, target_plan, threshold_plan
from liteasr.models import generation, whisper
from liteasr.planning.allocate import Budget
from liteasr.planning.damage import DAMAGE_MODELS, DEFAULT_DAMAGE
from liteasr.planning.flops import EncoderCost, encoder_cost
from liteasr.planning.plan import RankPlan, ThresholdRule
from liteasr.refine import DEFAULT_FOR_TARGETS, WINDOW_HEAL, HealConfig, HealReport, heal, heal_window, refit

REFINE_CHOICES = ("auto", "none", "refit", "heal")
# Below this many speakers (named by the calibration manifests) `compress` warns: the factors, and healing
# more, move toward the voices they are given. Measured on tiny.en at 0.7 (research/few_speakers): on new
# voices, calibrations of 1 and 4 speakers lost more WER than a calibration of many voices (refine.md; one
# speaker about three times as much); healing never made them measurably worse than the plain factors.
FEW_SPEAKERS = 8

# What is kept when nothing chooses the ranks (no target, threshold or plan): the recipe measured best, not
# the paper's rule, which keeps more encoder and lost more accuracy. tiny.en: 6.07M encoder params at +1.83 /
# +5.50 WER against the paper's rule's 7.39M at +8.02 / +11.61 (benchmarks/RESULTS.md, "The default recipe");
# base: 14.92M against 18.18M, as accurate within the interval on every clip of six sets in four languages,
# lower on four (research/multilingual/multilingual.md, "The default"; default_minus_paper.json).
DEFAULT_TARGET_PARAMS = 0.7
PAPER_RULE = "0.99:0.999"  # explained variance kept, attention:MLP (Kamahori et al.)


@dataclass(frozen=True)
class CompressConfig:
    """How to compress. A target (`target_params` or `target_flops`, a fraction of the dense encoder's)
    picks every layer's rank by measured damage (`allocation`); `threshold` (explained variance,
    attention:MLP) applies the paper's rule instead; `plan` fixes every rank. With none of them, the
    default: `target_params` DEFAULT_TARGET_PARAMS given calibration audio, the paper's rule (PAPER_RULE)
    from statistics alone (measured damage needs audio). `refine`: `auto` heals after a target (the
    measured best, research/healing/refine.md) and leaves the paper's plain PCA factors after a threshold."""

    target_params: float | None = None
    target_flops: float | None = None
    threshold: str | None = None
    allocation: str = DEFAULT_DAMAGE
    probe_clips: int = 8
    rank_multiple: int = 16
    refine: str = "auto"
    heal: HealConfig = field(default_factory=HealConfig)
    packing: str = DEFAULT_PACKING
    calibration_samples: int = 64
    seed: int = 0
    batch_size: int = 8
    shard_windows: int = 16
    plan: RankPlan | None = None  # a saved (or edited) plan to apply instead of choosing ranks
    # Encode clips on windows sized to the audio (None: Whisper's padded 30 s): the model is healed for
    # the policy (refine.window) on the calibration audio, and the policy is recorded in the checkpoint.
    window: whisper.WindowPolicy | None = None
    window_heal: HealConfig = field(default_factory=lambda: replace(WINDOW_HEAL))  # healing for the window: longer

    def budget(self, has_audio: bool = True) -> Budget | None:
        """The target ranks are allocated for (the default one when nothing chooses them and there is
        audio to measure damage on); None when a plan or the threshold rule chooses them."""
        given = [(k, v) for k, v in (("params", self.target_params), ("flops", self.target_flops)) if v is not None]
        if len(given) > 1:
            raise UserError("give at most one of --target-params, --target-flops")
        if given and self.plan is not None:
            raise UserError("--plan fixes the ranks; it cannot be combined with a target")
        if self.threshold is not None and (given or self.plan is not None):
            raise UserError("--threshold chooses ranks without a target: it cannot be combined with --target-* or --plan")
        if given:
            return Budget(*given[0])
        return Budget("params", DEFAULT_TARGET_PARAMS) if self.ranks_defaulted and has_audio else None

    @property
    def ranks_defaulted(self) -> bool:
        """Nothing chooses the ranks: no target, threshold or plan (the default then applies)."""
        return all(v is None for v in (self.target_params, self.target_flops, self.threshold, self.plan))

    def rule(self) -> ThresholdRule:
        """The threshold rule, when no target or plan chooses the ranks."""
        return ThresholdRule.parse(self.threshold or PAPER_RULE, self.rank_multiple)

    def refinement(self, has_audio: bool) -> str:
        if self.refine not in REFINE_CHOICES:
            raise UserError(f"refine must be one of {', '.join(REFINE_CHOICES)}, got {self.refine!r}")
        if self.allocation not in DAMAGE_MODELS:
            raise UserError(f"allocation must be one of {', '.join(DAMAGE_MODELS)}, got {self.allocation!r}")
        refine = self.refine if self.refine != "auto" else (
            DEFAULT_FOR_TARGETS if self.budget(has_audio) is not None and has_audio else "none")
        if refine != "none" and not has_audio:
            raise UserError(f"--refine {refine} needs --calibration audio (statistics alone cannot refit or heal)")
        return refine


@dataclass
class CompressedModel:
    """A compressed (lite-whisper) model and how it was made; `save` writes the checkpoint."""

    model: object  # LiteWhisperForConditionalGeneration
    processor: object
    plan: RankPlan
    source: str  # the dense MODEL
    base_cost: EncoderCost
    calibration: str  # what it was calibrated on, for the model card
    clip_hashes: list[str]
    heal_report: HealReport | None = None
    window_report: HealReport | None = None

    @property
    def cost(self) -> EncoderCost:
        return encoder_cost(self.model)

    def save(self, path: str | Path, overwrite: bool = False, command: str | None = None) -> Path:
        """A Hugging Face directory (atomic) that loads with transformers, liteasr and every runtime."""
        command = command or f"liteasr.compress({self.source!r}, ...)"
        save_checkpoint(self.model, self.processor, path, Provenance(self.source, self.base_cost, self.calibration,
                                                                     self.plan.method, command, self.clip_hashes),
                        overwrite=overwrite)
        return Path(path)

    def summary(self) -> str:
        base, after = self.base_cost, self.cost
        return (f"encoder params {base.params:,} -> {after.params:,} ({after.params / base.params:.1%}), "
                f"GFLOPs/window {base.gflops:.2f} -> {after.gflops:.2f}")


def calibration_clips(sources, samples: int | None = 64, seed: int = 0) -> list[Clip]:
    """`samples` clips drawn evenly from DATA sources (folders, manifests, Hugging Face datasets), each file
    read once before any model runs (a bad one is an error that names it)."""
    return screen(draw(read_sources(sources), samples, seed))[0]


# How many clips whose manifests state no `language` `compress` runs language detection on, when only they can
# tell whether a multilingual model's calibration mixes languages (a batch of windows: seconds, even on CPU)
DETECT_UNSTATED = 8


def detected_languages(loaded, clips: list[Clip], at_most: int = DETECT_UNSTATED) -> Counter:
    """The model's own language detection on up to `at_most` of `clips`, evenly spaced (each clip's first
    window): how many of them it finds in each language."""
    if not clips:
        return Counter()
    chosen = [clips[round(i * (len(clips) - 1) / max(at_most - 1, 1))] for i in range(min(at_most, len(clips)))]
    audios = [load_audio(c)[: generation.WINDOW_SAMPLES] for c in chosen]
    codes, _ = loaded.detect_language(loaded.encode(loaded.features(audios)))
    return Counter(codes)


def calibration_languages(loaded, clips: list[Clip], warn=print) -> str:
    """`en 128, pl 64, unstated 64` from the clips' manifests. Warns (through `warn`) when a multilingual
    model would be calibrated on fewer than two languages: measured on base at 0.6, languages the
    calibration did not hear lost about ten times the WER of those it heard. When the stated languages
    alone would warn, the model detects the language of a few unstated clips (`unstated 64 (detected on 8:
    en 8)`), so that English manifests without a `language` beside Polish ones do not read as one language."""
    counts = Counter(c.language or "unstated" for c in clips)
    text = ", ".join(f"{lang} {n}" for lang, n in counts.most_common())
    heard = {lang for lang in counts if lang != "unstated"}
    if not generation.is_multilingual(loaded.generation_config) or len(heard) >= 2:
        return text
    unstated = [c for c in clips if not c.language]
    if unstated:
        detected = detected_languages(loaded, unstated)
        text = text.replace(f"unstated {counts['unstated']}", f"unstated {counts['unstated']} (detected on "
                            f"{detected.total()}: {', '.join(f'{lang} {n}' for lang, n in detected.most_common())})")
        # a language counts when detection finds it in a quarter of the clips: one odd detection (speechocean's
        # Mandarin speakers reading English: `en 7, zh 1`) is no second language
        heard |= {lang for lang, n in detected.items() if 4 * n >= detected.total()}
    if len(heard) < 2 and current().is_main:
        warn(f"liteasr: warning: a multilingual model calibrated on one language ({text}): languages the "
             "calibration does not hear lose far more accuracy than those it hears. Mix in audio of every "
             "language you serve, each manifest line with its `language` (or each source as SOURCE@LANG).")
    return text


def calibration_speakers(clips: list[Clip]) -> int | None:
    """How many speakers the clips' manifests name (None when a clip's manifest names none)."""
    if not clips or any(c.speaker is None for c in clips):
        return None
    return len({c.speaker for c in clips})


def plan_ranks(loaded, stats: CovarianceStats, config: CompressConfig, clips: list[Clip] | None = None,
               eig=None) -> RankPlan:
    """The rank plan: `config.plan` as given, ranks for a target (measured damage needs `clips`), or the
    threshold rule."""
    eig = eig if eig is not None else spectra(stats)
    if config.plan is not None:
        return config.plan
    target = config.budget(has_audio=clips is not None)
    if target is not None:
        return target_plan(loaded, stats, eig, target, config.allocation, clips, config.rank_multiple,
                           probe_clips=config.probe_clips)
    return threshold_plan(loaded.model, stats, config.rule(), eig)


@dataclass
class Planned:
    """Calibration statistics and the rank plan drawn from them (what `compress --dry-run` shows)."""

    loaded: whisper.LoadedModel
    stats: CovarianceStats
    eig: dict
    plan: RankPlan
    clips: list[Clip] | None  # None when the statistics were given
    description: str


def calibrate_and_plan(model, calibration, config: CompressConfig = CompressConfig(), describe: str | None = None,
                       warn=print) -> Planned:
    """The first half of `compress`: calibrate (unless given statistics) and choose every rank."""
    loaded = model if isinstance(model, whisper.LoadedModel) else whisper.load(str(model))
    config.budget()  # a bad combination fails before any model runs
    config.rule()
    if isinstance(calibration, CovarianceStats):
        stats, clips = calibration, None
        description = describe or f"statistics ({stats.meta.get('clips', '?')} clips)"
    else:
        clips = list(calibration) if calibration and isinstance(next(iter(calibration)), Clip) else \
            calibration_clips(calibration, config.calibration_samples, config.seed)
        stats = calibrate(loaded, clips, batch_size=config.batch_size, packing=config.packing,
                          shard_windows=config.shard_windows)
        speakers = calibration_speakers(clips)
        description = f"{describe or f'{len(clips)} clips'} (seed {config.seed}), {stats.meta['windows']} windows, " \
                      f"languages {calibration_languages(loaded, clips, warn)}, " \
                      f"{'speakers unstated' if speakers is None else f'{speakers} speaker' + 's' * (speakers > 1)}"
        if speakers is not None and speakers < FEW_SPEAKERS and current().is_main:
            warn(f"liteasr: warning: the calibration's manifests name {speakers} speaker{'s' * (speakers > 1)}: the "
                 "factors (and healing, more) fit the voices they are given, and on new voices calibrations of 1 and "
                 "4 speakers lost more than a many-voice one (research/few_speakers). Calibrate on many voices "
                 "like your users'.")
    check_stats(loaded.model, stats)
    eig = spectra(stats)
    return Planned(loaded, stats, eig, plan_ranks(loaded, stats, config, clips, eig), clips, description)


def compress(model, calibration, config: CompressConfig = CompressConfig(), heal_data: list[Clip] = (),
             describe: str | None = None, warn=print) -> CompressedModel | None:
    """Compress a Whisper encoder: calibrate, plan, factor, refine.

    `model`: a MODEL spec (short name, Hub id, local or CTranslate2 directory) or a loaded
    `whisper.LoadedModel`. `calibration`: DATA sources (drawn as `config.calibration_samples` clips by
    `config.seed`), a list of `Clip`s, or `CovarianceStats` from an earlier calibration (then neither
    measured damage models nor refinement can run). `heal_data`: more clips for healing only.
    `describe`: the calibration as the model card names it; `warn`: where notes and warnings go.
    Under torchrun every process calibrates and plans; refinement runs once and only rank 0 gets the
    model (the others get None)."""
    refine = config.refinement(not isinstance(calibration, CovarianceStats))
    if config.window is not None and isinstance(calibration, CovarianceStats):
        raise UserError("--window heals the model for its window on audio: it needs --calibration audio")
    window = config.window is not None and not config.window.padded
    if heal_data and refine != "heal" and not window:
        raise UserError("--heal-data is audio for healing: it needs --calibration audio and healing "
                        "(--refine heal, or auto with a target; or --window)")
    planned = calibrate_and_plan(model, calibration, config, describe, warn)
    # a model the caller loaded stays dense (they may use it beside); one loaded here is factored in place
    return finish(planned, config, refine, heal_data, warn=warn, keep_dense=isinstance(model, whisper.LoadedModel))


def finish(planned: Planned, config: CompressConfig, refine: str, heal_data: list[Clip] = (),
           heal_describe: str | None = None, warn=print, keep_dense: bool = False) -> CompressedModel | None:
    """The second half of `compress`: factor by the plan and refine, on rank 0 only under torchrun (the
    others get None). `heal_describe`: the healing data as the model card names it. The dense model is
    factored in place (no second copy in memory) unless `keep_dense` or healing (which needs the dense
    model beside)."""
    if not current().is_main:  # refit, healing and writing happen once, on rank 0
        return None
    return build(planned, config, refine, heal_data, heal_describe, warn, keep_dense)


def build(planned: Planned, config: CompressConfig, refine: str, heal_data: list[Clip] = (),
          heal_describe: str | None = None, warn=print, keep_dense: bool = False) -> CompressedModel:
    """`finish` on this process, whatever its rank (a sweep builds every point on every process, each then
    evaluating its share of the clips)."""
    loaded, plan, clips, report = planned.loaded, planned.plan, planned.clips, None
    window = config.window is not None and not config.window.padded
    base = encoder_cost(loaded.model)
    if refine == "refit":
        lite = refit(loaded, plan, clips, config.packing, config.batch_size)
        plan.method += ", anchored refit"
    else:  # healing needs the dense model beside the compressed one: compress a copy
        model = copy.deepcopy(loaded.model) if refine == "heal" or keep_dense or window else loaded.model
        lite = compress_(model, planned.stats, plan, planned.eig)
        if refine == "heal":  # from the PCA factors: healing the refit measured worse (research/healing/refine.md)
            warn(f"healing the factors on the calibration audio{' and the healing data' if heal_data else ''}: they "
                 "move toward its voices, so calibrate on audio like your users' (--refine none: the paper's plain "
                 "PCA factors)")
            report = heal(loaded, lite, list(clips) + list(heal_data), config.heal, config.packing)
            warn(report.summary())
            more = f" and {heal_describe or f'{len(heal_data)} healing clips'}" if heal_data else ""
            plan.method += f", healed on the calibration clips{more} ({report.steps} end-to-end steps, " \
                           f"{report.seconds / 60:.1f} min)"
    window_report = None
    if window:
        window_report = adapt_window(loaded, lite, None if clips is None else list(clips) + list(heal_data),
                                     config.window, config.window_heal, warn)
        soup = f" in a soup of {len(window_report.members)} runs" if window_report.members else ""
        plan.method += f", healed for windows of {describe_window(config.window)} ({window_report.steps} steps{soup}, " \
                       f"{window_report.seconds / 60:.1f} min)"
    return CompressedModel(lite, loaded.processor, plan, loaded.name, base, planned.description,
                           planned.stats.meta.get("clip_hashes", []), report, window_report)


def describe_window(policy: whisper.WindowPolicy) -> str:
    return f"the audio + {policy.margin:g} s, at least {policy.floor:g} s, in steps of {policy.multiple:g} s"


def adapt_window(loaded: whisper.LoadedModel, student, clips: list[Clip], policy: whisper.WindowPolicy,
                 config: HealConfig = WINDOW_HEAL, warn=print) -> HealReport:
    """Heal `student` (a compressed copy of `loaded.model`, or `loaded.model` itself) for `policy`'s windows
    against the dense model on its padded window, and record the policy in its config (the checkpoint then
    carries it; inference honours it by default)."""
    if clips is None:
        raise UserError("--window heals the model for its window on audio: it needs --calibration audio")
    runs = f"; {config.seeds} runs averaged (--window-heal-seeds)" if config.seeds > 1 else ""
    budget = f", within {config.minutes:g} min" if config.minutes is not None else ""
    warn(f"healing for short windows ({describe_window(policy)}) on the calibration audio{runs}{budget}")
    report = heal_window(loaded, student, clips, policy, config)
    warn("window " + report.summary())
    student.config.liteasr_window = policy.to_dict()
    return report
