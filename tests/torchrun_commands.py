"""Run several `liteasr` commands in one torchrun launch (one process start-up for all of them).

    torchrun --nproc-per-node 2 tests/torchrun_commands.py COMMANDS.json
COMMANDS.json: a list of argument lists; stops at the first command that fails, with its exit code.
"""

import json
import sys

from liteasr.cli import main

if __name__ == "__main__":
    for argv in json.loads(open(sys.argv[1]).read()):
        code = main(argv)
        if code:
            sys.exit(code)
