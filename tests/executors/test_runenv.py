"""The environment a RUN step sees, for both executors: HOME/HOSTNAME/PWD/SHLVL, /etc/hosts, resolv.conf, hostname.

Expected values are what Docker showed: `DOCKER_BUILDKIT=0 docker build` (Docker 20.10, the shared engine, a base
made by `docker import` of the busybox tree) of `RUN cat /etc/hosts /etc/resolv.conf /etc/hostname; env`, of
`RUN ["/bin/env"]`, and of `echo $HOME` under the USERs below. The same values are compared file-for-file with the
classic builder in tests/conformance/cases/run-env-*.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from minibuild.executors import runenv
from minibuild.fs.diff import diff_snapshot, snapshot
from minibuild.executors.executor import EmulateExecutor, Executor, RunRequest, RunResult, resolve_user
from tests.support import require, require_root

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# `cat /etc/hosts` in a classic-builder RUN (no network address, so no line for the container's own name)
DOCKER_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
PASSWD_LINES = ("app:x:1000:1000:app:/home/app:/bin/sh\n"
                "nohome:x:1001:1001::/nonexist:/bin/sh\n"
                "empty:x:1002:1002:::/bin/sh\n")


def _chroot() -> Executor:
    require(sys.platform.startswith("linux"), "the chroot executor needs Linux")
    require_root()  # USER steps need real root under the chroot executor
    from minibuild.executors.chroot import ChrootExecutor, platform_problem

    require(platform_problem() is None, f"chroot executor unavailable: {platform_problem()}")
    return ChrootExecutor()


@pytest.fixture(params=["emulate", "chroot"])
def executor(request: pytest.FixtureRequest) -> Executor:
    return EmulateExecutor() if request.param == "emulate" else _chroot()


@pytest.fixture()
def root(busybox_rootfs: Path) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="mb-runenv-", dir="/tmp"))
    os.chmod(base, 0o755)
    dest = base / "root"
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    os.chmod(dest, 0o755)
    with open(dest / "etc" / "passwd", "a") as f:
        f.write(PASSWD_LINES)
    yield dest
    shutil.rmtree(base, ignore_errors=True)


def sh(ex: Executor, root: Path, script: str, *, user: str = "", env: tuple[tuple[str, str], ...] = (),
       workdir: str = "/") -> RunResult:
    res = ex.run(RunRequest(root=root, argv=("/bin/sh", "-c", script), env=(("PATH", PATH), *env), user=user,
                            workdir=workdir))
    assert res.exit_code == 0, res.stderr
    return res


# --------------------------------------------------------------------------- HOME, HOSTNAME, PWD, SHLVL


def test_step_env_rules() -> None:
    # runc sets HOME only when the environment has none or an empty one (ENV HOME= gave HOME=/root under Docker)
    assert runenv.step_env({"PATH": "/bin"}, "/root") == {"HOSTNAME": "minibuild", "PATH": "/bin", "HOME": "/root"}
    assert runenv.step_env({"HOME": "/custom"}, "/root")["HOME"] == "/custom"
    assert runenv.step_env({"HOME": ""}, "/root")["HOME"] == "/root"
    assert runenv.step_env({"HOSTNAME": "mine"}, "/")["HOSTNAME"] == "mine"  # the image's Env wins, as in moby


@pytest.mark.parametrize(("user", "home"), [
    ("", "/root"), ("app", "/home/app"), ("4242", "/"), ("nobody", "/"), ("nohome", "/nonexist"),
    ("empty", ""), ("1000:0", "/home/app"),
])
def test_home_follows_user(executor: Executor, root: Path, user: str, home: str) -> None:
    # Docker printed HOME=/root, /home/app, /, /, /nonexist, "" (an empty passwd field) and /home/app
    assert resolve_user(root, user).home == home
    assert sh(executor, root, 'echo "[$HOME]"', user=user).stdout == f"[{home}]\n".encode()


def test_env_home_wins_unless_empty(executor: Executor, root: Path) -> None:
    assert sh(executor, root, "echo $HOME", env=(("HOME", "/custom"),), user="app").stdout == b"/custom\n"
    assert sh(executor, root, "echo $HOME", env=(("HOME", ""),)).stdout == b"/root\n"


def test_shell_form_env_is_dockers(executor: Executor, root: Path) -> None:
    # `RUN env | sort` under Docker (WORKDIR /tmp): HOME=/root HOSTNAME=<id> PATH=... PWD=/tmp SHLVL=1
    out = sh(executor, root, "env | sort; sh -c 'echo $SHLVL $PWD'; cd /; echo $OLDPWD", workdir="/tmp").stdout
    assert out.decode().splitlines() == [
        "HOME=/root", "HOSTNAME=minibuild", f"PATH={PATH}", "PWD=/tmp", "SHLVL=1", "2 /tmp", "/tmp"]


def test_exec_form_has_no_shell_variables(executor: Executor, root: Path) -> None:
    # `RUN ["/bin/env"]` under Docker printed PATH, HOSTNAME, HOME only: PWD and SHLVL come from a shell
    res = executor.run(RunRequest(root=root, argv=("/bin/env",), env=(("PATH", PATH),), workdir="/tmp"))
    assert sorted(res.stdout.decode().splitlines()) == ["HOME=/root", "HOSTNAME=minibuild", f"PATH={PATH}"]


# --------------------------------------------------------------------------- /etc/hosts, resolv.conf, hostname


def test_etc_files_are_dockers_and_leave_no_trace(executor: Executor, root: Path) -> None:
    before = snapshot(root)
    out = sh(executor, root, "cat /etc/hosts; echo --; cat /etc/hostname; echo --; cat /etc/resolv.conf; "
                             "echo '10.0.0.1 extra' >> /etc/hosts; grep -c extra /etc/hosts").stdout.decode()
    hosts, hostname, rest = out.split("--\n")
    assert hosts == DOCKER_HOSTS
    assert hostname == "minibuild\n"
    assert rest == runenv.host_resolv_conf() + "1\n"
    assert diff_snapshot(root, before) == []  # nothing for the layer: not the files, not their mount points
    assert sh(executor, root, "grep -c extra /etc/hosts || true").stdout == b"0\n"  # each step starts afresh


def test_missing_etc_is_not_left_behind(executor: Executor, root: Path) -> None:
    shutil.rmtree(root / "etc")
    before = snapshot(root)
    assert sh(executor, root, "cat /etc/hostname").stdout == b"minibuild\n"
    assert not (root / "etc").exists()
    assert diff_snapshot(root, before) == []


def test_image_files_are_hidden_and_kept(executor: Executor, root: Path) -> None:
    (root / "etc" / "hosts").write_text("10.9.9.9 mine\n")
    before = snapshot(root)
    out = sh(executor, root, "cat /etc/hosts; echo changed > /etc/hosts").stdout.decode()
    assert out == DOCKER_HOSTS
    assert (root / "etc" / "hosts").read_text() == "10.9.9.9 mine\n"
    assert diff_snapshot(root, before) == []


def test_symlinked_etc_hosts_is_followed_inside_the_root(executor: Executor, root: Path) -> None:
    # runc resolves a mount destination inside the root: the link's target is covered, the link stays
    (root / "etc" / "hosts.real").write_text("10.9.9.9 mine\n")
    (root / "etc" / "hosts").symlink_to("/etc/hosts.real")
    assert sh(executor, root, "cat /etc/hosts; cat /etc/hosts.real").stdout.decode() == DOCKER_HOSTS * 2
    assert (root / "etc" / "hosts.real").read_text() == "10.9.9.9 mine\n"
    assert os.readlink(root / "etc" / "hosts") == "/etc/hosts.real"


def test_resolv_conf_filtered_as_docker() -> None:
    # Docker drops local nameservers (they cannot answer inside the container's network namespace) and falls
    # back to Google's public resolvers when none is left (docs: "DNS services", container networking)
    assert runenv.resolv_conf("nameserver 10.255.255.53\n") == "nameserver 10.255.255.53\n"
    assert runenv.resolv_conf("search lan\nnameserver 127.0.0.1\nnameserver ::1\noptions ndots:2\n") == \
        "search lan\noptions ndots:2\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    assert runenv.resolv_conf(None) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_layer_of_a_step_writing_etc_is_dockers(executor: Executor, root: Path) -> None:
    # `RUN echo x > /etc/foo && echo y >> /etc/hosts` on the busybox base (no /etc/hosts): the classic builder's
    # layer tar held exactly etc (0755) and etc/foo (0644) (docker save, Docker 20.10)
    before = snapshot(root)
    sh(executor, root, "echo x > /etc/foo && echo y >> /etc/hosts")
    assert [(e.path, e.type, oct(e.mode)) for e in diff_snapshot(root, before)] == [
        ("etc", "dir", "0o755"), ("etc/foo", "file", "0o644")]


def test_etc_hosts_link_loop_is_no_error(executor: Executor, root: Path) -> None:
    (root / "etc" / "hosts").symlink_to("hosts")
    before = snapshot(root)
    assert sh(executor, root, "cat /etc/hostname").stdout == b"minibuild\n"  # the other files are still bound
    assert diff_snapshot(root, before) == []
