"""Calibration options shared by the healing studies (research/healing/refine.md): the clips they healed on."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the benchmarks' _common
from _common import speech_or_exit  # noqa: E402

from liteasr.data.audio import draw, read_sources  # noqa: E402


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
