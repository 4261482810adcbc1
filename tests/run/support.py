"""Helpers of the `minibuild run` tests: a run in a subprocess, fetched over HTTP and stopped by a signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ENV = {**os.environ, "MINIBUILD_FIXTURE_PADDING": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    """A `minibuild run` in a subprocess; stop() sends a signal and returns (status, stdout, stderr)."""

    def __init__(self, store: Path, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "minibuild", "--store", str(store), "run", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)

    def get(self, url: str, timeout: float = 90) -> tuple[int, dict[str, str], bytes]:
        """GET ``url`` once the server answers (retrying while the port refuses or closes)."""
        end = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    return resp.status, dict(resp.headers), resp.read()
            except urllib.error.HTTPError as exc:
                return exc.code, dict(exc.headers), exc.read()
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None or time.monotonic() > end:
                    out, err = self.proc.communicate(timeout=30)
                    pytest.fail(f"no answer from {url}; status {self.proc.returncode}\n{out!r}\n{err!r}")
                time.sleep(0.2)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, bytes, bytes]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        """End it: a stop signal, a second one (which kills a real program's process tree), then SIGKILL."""
        for sig in (signal.SIGINT, signal.SIGINT, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
        self.proc.communicate()


def start(running: list[Running], store: Path, *args: str) -> Running:
    """A Running that the ``running`` fixture ends after the test."""
    r = Running(store, *args)
    running.append(r)
    return r
