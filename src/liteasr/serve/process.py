"""`liteasr serve` in a child process, for tests and benchmarks: start it, learn its URL, stop it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading


class ServerProcess:
    """`liteasr serve MODEL --port 0 ARGS...` on loopback; `url` waits until it listens."""

    def __init__(self, model, *args, env: dict | None = None):
        env = dict(os.environ, HF_HUB_OFFLINE="1", **(env or {}))
        self.proc = subprocess.Popen([sys.executable, "-m", "liteasr", "serve", str(model), "--host", "127.0.0.1",
                                      "--port", "0", "--log-level", "warning", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []  # everything it printed
        self._url = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT, once the model is loaded and the server listens."""
        while self._url is None:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("server exited before listening:\n" + "".join(self.lines))
            self.lines.append(line)
            found = re.search(r"at (http://127\.0\.0\.1:\d+)/v1", line)
            if found:
                self._url = found.group(1)
                threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        return self._url

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (the server drains), then the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout)
