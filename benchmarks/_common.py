"""Shared by the benchmark scripts: where the data is and how results are written."""

import sys
from pathlib import Path

from transformers.utils import logging

from liteasr.data.audio import draw, read_sources
from liteasr.demo import shared_speech


def speech_or_exit() -> Path:
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


def add_calibration_options(parser) -> None:
    parser.add_argument("--calibration", nargs="+", metavar="DATA",
                        help="calibration audio (default: librispeech_calib and runs/refine/speechocean_train_calib, "
                             "as for the default compress in research/healing/refine.md)")
    parser.add_argument("--clips", type=int, default=200, help="calibration clips drawn (seed 0)")


def calibration_clips(args) -> tuple[list, list[str]]:
    """(the clips, their sources) of add_calibration_options' arguments."""
    speech = speech_or_exit()
    sources = args.calibration or [str(speech / "librispeech_calib"), "runs/refine/speechocean_train_calib"]
    return draw(read_sources(sources), args.clips, seed=0), sources
