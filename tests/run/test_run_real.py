"""`minibuild run` of an image with real binaries (Debian's static busybox): the chroot executor runs them, in the
host's network namespace, with the program's exit status, stop signals passed on, and -p as a loopback proxy."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from minibuild.executors.chroot import platform_problem
from tests.cli.support import mb
from tests.run.support import Running, free_port, start
from tests.support import require


@pytest.fixture(scope="module")
def store(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    problem = platform_problem()
    require(problem is None, f"the chroot executor cannot run here: {problem}")
    ctx = tmp_path_factory.mktemp("real-ctx")
    shutil.copytree(busybox_rootfs, ctx / "rootfs", symlinks=True)
    (ctx / "rootfs" / "www").mkdir(exist_ok=True)
    (ctx / "rootfs" / "www" / "index.html").write_text("real busybox httpd\n")
    (ctx / "Dockerfile").write_text('FROM scratch\nCOPY rootfs/ /\nCMD ["sh"]\n')
    st = tmp_path_factory.mktemp("real-store")
    res = mb(st, "build", "-t", "realbb", str(ctx))
    assert res.returncode == 0, res.stderr
    return st


def test_a_real_binary_runs_with_its_exit_status(store: Path) -> None:
    res = mb(store, "run", "realbb", "sh", "-c", "echo hi from $(readlink /proc/1/exe); exit 3")
    assert (res.returncode, res.stdout) == (3, "hi from /bin/busybox\n"), res.stderr  # pid 1 is the real busybox


def test_a_stop_signal_is_passed_on_to_the_program(store: Path, running: list[Running]) -> None:
    r = start(running, store, "realbb", "sh", "-c", 'trap "echo got INT; exit 0" INT; echo ready; '
              "while :; do sleep 0.1; done")
    assert r.proc.stdout is not None
    assert r.proc.stdout.readline() == b"ready\n"
    code, out, _ = r.stop(signal.SIGINT)
    assert (code, out) == (0, b"got INT\n")


def test_publish_proxies_a_host_port_to_the_program_port(store: Path, running: list[Running]) -> None:
    inner, outer = free_port(), free_port()
    r = start(running, store, "-p", f"{outer}:{inner}", "realbb", "httpd", "-f", "-p", f"127.0.0.1:{inner}", "-h",
              "/www")
    assert r.get(f"http://127.0.0.1:{outer}/")[::2] == (200, b"real busybox httpd\n")
    assert r.get(f"http://127.0.0.1:{inner}/")[::2] == (200, b"real busybox httpd\n")  # the host's own port
    r.proc.send_signal(signal.SIGINT)  # busybox httpd as PID 1 has no handler: it ignores SIGINT, as in Docker
    time.sleep(1)
    assert r.proc.poll() is None
    code, _, err = r.stop(signal.SIGINT)  # a second signal kills it
    assert code == 137 and b"passed on to the program" in err


def test_stdin_only_with_interactive(store: Path) -> None:
    assert mb(store, "run", "-i", "realbb", "cat", stdin="real stdin\n").stdout == "real stdin\n"
    assert mb(store, "run", "realbb", "cat", stdin="real stdin\n").stdout == ""
