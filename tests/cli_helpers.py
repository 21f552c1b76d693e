"""Running the `liteasr` command line from tests.

In this process by default: the same `main()` as `python -m liteasr`, its stdout and stderr captured and
its exit code returned, without an interpreter and torch start-up per call (seconds each on 2 cores).
`subprocess=True` runs `python -m liteasr` where the process itself is under test (the entry point,
tracebacks, signals)."""

import contextlib
import io
import os
import subprocess as sp
import sys
from types import SimpleNamespace


def liteasr(*args, cwd=None, subprocess: bool = False, **kw):
    argv = [str(a) for a in args]
    if subprocess:
        return sp.run([sys.executable, "-m", "liteasr", *argv], capture_output=True, text=True, cwd=cwd,
                      env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=600, **kw)
    from liteasr.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), contextlib.chdir(cwd or os.getcwd()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def assert_user_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("liteasr: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
