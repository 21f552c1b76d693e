"""Shared by the benchmark scripts: where the data is and how results are written."""

import sys
from pathlib import Path

from transformers.utils import logging

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
