"""Shared by the benchmark scripts: where the data is and how results are written."""

import argparse
import json
import random
import sys
from pathlib import Path

from transformers.utils import logging

from liteasr.atomic import atomic_file


# Ranks of layers 0-3 of the public efficient-speech/lite-whisper-large-v3 config (the part of it
# we could read offline); large_v3_shapes repeats them over the 32 layers.
LARGE_V3_RANKS = [
    {"fc1": 368, "fc2": 368, "k_proj": 32, "out_proj": 32, "q_proj": 32, "v_proj": 48},
    {"fc1": 272, "fc2": 352, "k_proj": 64, "out_proj": 112, "q_proj": 64, "v_proj": 128},
    {"fc1": 224, "fc2": 224, "k_proj": 48, "out_proj": 160, "q_proj": 48, "v_proj": 160},
    {"fc1": 288, "fc2": 208, "k_proj": 48, "out_proj": 160, "q_proj": 48, "v_proj": 192},
]


def large_v3_shapes():
    """(WhisperConfig, LiteWhisperConfig) of large-v3's encoder shapes, the lite one at LARGE_V3_RANKS; a one-layer
    decoder, since only the encoder is timed."""
    from transformers import WhisperConfig

    from liteasr.models.hf.configuration_lite_whisper import LiteWhisperConfig

    common = dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120, num_mel_bins=128,
                  decoder_layers=1, decoder_attention_heads=20, decoder_ffn_dim=512, vocab_size=51866)
    ranks = [LARGE_V3_RANKS[min(i, 3)] for i in range(32)]
    return WhisperConfig(**common), LiteWhisperConfig(low_rank_config=ranks, **common)


def speech_or_exit() -> Path:
    # imported here, as load_eval_sets below: evaluation needs jiwer and Whisper's normalizers, which the GPU
    # benchmarks (timing shapes on a lent machine that lacks them) never use
    from liteasr.demo import shared_speech

    logging.set_verbosity_error()
    speech = shared_speech()
    if speech is None:
        print("this benchmark needs ../shared/data/speech", file=sys.stderr)
        sys.exit(2)
    return speech


def emit(lines: list[str], markdown: str | None) -> None:
    """Print the table and, if asked, append it to a markdown file."""
    text = "\n".join(lines) + "\n"
    print(text)
    if markdown:
        with open(markdown, "a") as f:
            f.write("\n" + text)


def write_json(path: str | Path, payload: dict) -> None:
    """Write a benchmark's JSON whole or not at all (a run cut off keeps the last complete result)."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1))


def gpu_bench_main(doc: str, script: str, pack_arg: tuple[str, str], pack, run, markdown, repeats: int,
                   batches: str) -> int:
    """The verbs of a benchmark whose models' configs are packed here and timed, with random weights of their
    shapes, on a lent GPU: `pack SOURCE OUT`, `run PACKED [--json] [--markdown]`, `table JSON`. `pack(source,
    out)`, `run(packed, device, repeats, batches) -> dict`, `markdown(result) -> list of lines`."""
    import argparse

    import torch

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True)
    pk = sub.add_parser("pack")
    pk.add_argument("source", metavar=pack_arg[0], type=Path, help=pack_arg[1])
    pk.add_argument("out", type=Path)
    r = sub.add_parser("run")
    r.add_argument("packed", type=Path)
    r.add_argument("--device", default="cuda")
    r.add_argument("--repeats", type=int, default=repeats)
    r.add_argument("--batches", default=batches, help="batch sizes, comma-separated")
    r.add_argument("--json", type=Path)
    r.add_argument("--markdown", help="also append the tables to this file")
    t = sub.add_parser("table")
    t.add_argument("json", type=Path)
    args = p.parse_args()
    if args.verb == "table":
        print("\n".join(markdown(json.loads(args.json.read_text()))))
    elif args.verb == "pack":
        pack(args.source, args.out)
    else:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            sys.exit(f"{script} run: no CUDA device (use --device cpu for a smoke run)")
        result = run(args.packed, args.device, args.repeats, [int(b) for b in args.batches.split(",")])
        if args.json:
            write_json(args.json, result)
        emit(markdown(result), args.markdown)
    return 0


def wer_cell(d: dict) -> str:
    """A dataset's WER with its ΔWER against the first model and 95% interval, when it has one."""
    delta = d.get("delta_wer")
    return f"{d['wer']:.2f}" + (f" ({delta['delta']:+.2f} [{delta['low']:+.2f}, {delta['high']:+.2f}])" if delta else "")


POLISH_CALIB_SPEAKERS = ("IC0", "KS0")


def write_manifest(rows: list[dict], folder: Path, audio_root: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({**r, "audio": str((audio_root / r["audio"]).resolve())}) for r in rows]
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def rows(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "manifest.jsonl").read_text().splitlines() if x.strip()]


def multilingual_splits(speech: Path, work: Path) -> dict[str, Path]:
    """Calibration and evaluation manifests with disjoint speakers (written under `work`, never into
    ../shared): English, half of speechocean_train's speakers (seed 0) each way; Polish, nemo_pl_calib of
    two speakers to calibrate on, nemo_pl of the other two to evaluate on. The English evaluation manifests
    (speechocean's other half, and librispeech_other's copy) state `language: en`, as ../shared's
    non-English sets state theirs: a multilingual model is then scored in English, with its language-ID
    mistakes counted apart instead of as word errors (research/multilingual/multilingual.md, "Decoding")."""
    so = rows(speech / "speechocean_train")
    speakers = sorted({r["speaker"] for r in so})
    random.Random(0).shuffle(speakers)
    calib = set(speakers[: len(speakers) // 2])
    pl_calib = [r for r in rows(speech / "nemo_pl_calib") if r["speaker"] in POLISH_CALIB_SPEAKERS]
    pl_eval = [r for r in rows(speech / "nemo_pl") if r["speaker"] not in POLISH_CALIB_SPEAKERS]
    return {
        "speechocean_calib": write_manifest([r for r in so if r["speaker"] in calib], work / "speechocean_calib",
                                            speech / "speechocean_train"),
        "speechocean_heldout": write_manifest([{**r, "language": "en"} for r in so if r["speaker"] not in calib],
                                              work / "speechocean_heldout", speech / "speechocean_train"),
        "librispeech_other": write_manifest([{**r, "language": "en"} for r in rows(speech / "librispeech_other")],
                                            work / "librispeech_other", speech / "librispeech_other"),
        "nemo_pl_calib_half": write_manifest(pl_calib, work / "nemo_pl_calib_half", speech / "nemo_pl_calib"),
        "nemo_pl_heldout": write_manifest(pl_eval, work / "nemo_pl_heldout", speech / "nemo_pl"),
    }

def base_calibration(speech: Path, split: dict[str, Path]) -> list[str]:
    """benchmarks/base.py's calibration sources (`split`: multilingual_splits): English, librispeech_calib and half
    of speechocean_train's speakers; Polish, nemo_pl_calib of two speakers."""
    return [str(speech / "librispeech_calib"), str(split["speechocean_calib"]), str(split["nemo_pl_calib_half"])]


def base_eval_sets(speech: Path, split: dict[str, Path]) -> list[str]:
    """benchmarks/base.py's evaluation sets: English on unseen speakers (manifests stating `en`, from `split`),
    Polish on its other two speakers (both languages calibrated on), Italian, German and Spanish (never
    calibrated on)."""
    return [str(split["librispeech_other"]), str(split["speechocean_heldout"]), str(split["nemo_pl_heldout"]),
            str(speech / "emovo_it"), str(speech / "emodb_de"), str(speech / "css10_es")]


def add_base_study_args(p, sweep: bool = True) -> None:
    """The options of a study on benchmarks/base.py's data: its work folder, how it drew its clips, and (`sweep`)
    where its models are and which budget."""
    p.add_argument("--work", type=Path, default=Path("runs/base"), help="benchmarks/base.py's work folder")
    p.add_argument("--clips", type=int, default=256, help="benchmarks/base.py's calibration clips (seed 0)")
    p.add_argument("--samples", type=int, default=40, help="evaluation clips per set (seed 0), as benchmarks/base.py")
    if sweep:
        p.add_argument("--sweep", type=Path, default=Path("runs/base/sweep"), help="benchmarks/base.py's sweep folder")
        p.add_argument("--target", type=float, default=0.7)


def decoding_study(doc: str, json_default: str) -> tuple[argparse.Namespace, list]:
    """A study on benchmarks/decoding.py's clips: its options parsed (--samples a set, --work, --json), ../shared
    found, and the sets (librispeech_other and the speechocean speakers no calibration of --work holds,
    multilingual_splits; seed 1). Returns (args, sets)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=100, help="clips per set (seed 1), as benchmarks/decoding.py")
    p.add_argument("--work", type=Path, default=Path("runs/decoding"), help="benchmarks/decoding.py's work folder")
    p.add_argument("--json", type=Path, default=Path(json_default))
    args = p.parse_args()
    speech = speech_or_exit()
    split = multilingual_splits(speech, args.work)
    return args, decoding_eval_sets(speech, split, args.samples)


def decoding_eval_sets(speech: Path, split: dict[str, Path], samples: int) -> list:
    """benchmarks/decoding.py's evaluation sets (`split`: multilingual_splits), `samples` clips each (seed 1)."""
    from liteasr.evaluation.report import load_eval_sets

    return load_eval_sets([str(speech / "librispeech_other"), str(split["speechocean_heldout"])], samples, seed=1)


def base_sweep_point(sweep: Path, target: float, script: str) -> Path:
    """benchmarks/base.py's healed model at `target` under `sweep` (its statistics beside it); exits with a
    one-line message naming `script` when benchmarks/base.py has not run."""
    healed = sweep / f"encoder-params-{target:g}-heal"
    for needed in (sweep / "stats.safetensors", healed / "plan.json"):
        if not needed.is_file():
            sys.exit(f"{script}: {needed} is missing: run benchmarks/base.py first")
    return healed


DEFAULT_WORK = Path("runs/bench")


def default_compression(work: Path = DEFAULT_WORK, target: float = 0.7, clips: int = 64, fresh: bool = False) -> Path:
    """tiny.en compressed with every library default but the budget (`liteasr compress tiny.en --calibration
    librispeech_calib vctk_p239 cathy_arctic --target-params 0.7`, the demo's 130 calibration speakers), made
    under `work` unless already there (or `fresh`): what `make bench` measures, and the model the runtime and
    server benchmarks use when given none."""
    import liteasr
    from liteasr.demo import CALIBRATION

    out = Path(work) / f"tiny.en-{target:g}"
    if fresh or not (out / "config.json").is_file():
        speech = speech_or_exit()
        config = liteasr.CompressConfig(target_params=target, calibration_samples=clips)
        liteasr.compress("tiny.en", [str(speech / s) for s in CALIBRATION], config).save(out, overwrite=True)
    return out
