"""`liteasr` command line: one module per command, each with `register(subparsers)` and `run(args)`."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import warnings

from liteasr.cli import bench, calibrate, compress, demo
from liteasr.cli import eval as eval_
from liteasr.cli import export, info, merge_stats, serve, sweep, transcribe
from liteasr.cli.common import DAMAGE_MODELS, DEFAULT_DAMAGE  # noqa: F401  (checked against damage.py by the tests)
from liteasr.errors import UserError

# In the order `liteasr --help` lists them: the flow, then the tools around it.
COMMANDS = (calibrate, merge_stats, compress, export, info, transcribe, eval_, bench, sweep, serve, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liteasr", description="Make Whisper encoders smaller and faster from a little unlabeled audio.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _process_group(args):
    """Under torchrun: join the process group; only rank 0 prints results and progress."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return contextlib.nullcontext()
    if not getattr(args, "distributed", False):
        raise UserError(f"`liteasr {args.command}` does not run under torchrun (calibrate, compress, eval and sweep do)")
    from liteasr.cli.common import device
    from liteasr.distributed import session

    if int(os.environ.get("RANK", "0")) != 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the process)
        os.environ["TQDM_DISABLE"] = "1"
    return session(device(args.device))


def _terminate(signum, frame):
    raise KeyboardInterrupt  # unwinds through atomic writes, which remove their temp paths


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        _quiet_libraries()
        with _process_group(args):
            args.func(args)
        return 0
    except UserError as exc:
        if args.debug:
            raise
        print(f"liteasr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("liteasr: interrupted; no output was written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `liteasr transcribe DIR | head`: the reader has what it wanted; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit would fail again
        return 141  # as a shell reports a process ended by SIGPIPE
    except Exception as exc:  # a bug, not a user mistake: keep it short unless asked
        if args.debug:
            raise
        print(f"liteasr: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1
