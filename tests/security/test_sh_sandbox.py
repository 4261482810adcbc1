"""The emulated shell is a sandbox: no builtin reaches outside its root and no host environment leaks in.

Each script runs through `minibuild.sh.run_script` with a root next to a guarded directory holding a sentinel; the
script tries symlink tricks in cp/mv/ln/tar/rm/find, redirections to /proc/self/..., `..` chains and hard links to
host paths.  Whatever the exit status, the guarded directory must be unchanged, its secret must not appear in the
output or inside the root, and errors must be ShellError/exit codes, never other exceptions.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from minibuild.errors import MinibuildError
from tests.security.hostile import SENTINEL_TEXT, Guard

sh = pytest.importorskip("minibuild.sh", reason="the emulated shell (helper D) is not in this checkout")

SECRET_ENV = "MINIBUILD_TEST_HOST_SECRET"
SECRET_VALUE = "host-secret-5f1c"

SCRIPTS = {
    "redirect-through-abs-symlink": "ln -s {OUT} /esc; echo pwned > /esc/sentinel",
    "redirect-through-rel-symlink": "ln -s ../../../../../../../../..{OUT} /esc; echo pwned > /esc/sentinel",
    "append-through-symlink-file": "ln -s {OUT}/sentinel /s; echo pwned >> /s",
    "dotdot-chain-redirect": "echo pwned > ../../../../../../../../..{OUT}/sentinel",
    "dotdot-cd": "cd ../../../../../../../../.. && cd .{OUT} && echo pwned > sentinel; pwd",
    "proc-self-root": "echo pwned > /proc/self/root{OUT}/sentinel",
    "proc-self-cwd": "cat /proc/self/root{OUT}/sentinel; cat /proc/self/cwd/../outside/sentinel",
    "proc-self-environ": "cat /proc/self/environ; cat /proc/1/environ",
    "read-through-symlink": "ln -s {OUT}/sentinel /s; cat /s; cat ../../../../../..{OUT}/sentinel",
    "cp-into-symlinked-dir": "ln -s {OUT} /esc; echo pwned > /p; cp /p /esc/sentinel; cp /p /esc/",
    "cp-out-of-symlink": "ln -s {OUT} /esc; cp /esc/sentinel /stolen; cp -r /esc /stolen-dir; cat /stolen",
    "cp-a-symlink-dir": "mkdir /d; ln -s {OUT} /d/link; cp -a /d /e; cp -rL /d /f; ls -R /f",
    "mv-onto-host": "ln -s {OUT} /esc; echo pwned > /p; mv /p /esc/sentinel; mv /esc/sentinel /grabbed",
    "ln-hardlink-host": "ln {OUT}/sentinel /h; ln -s {OUT} /esc; ln /esc/sentinel /h2; echo pwned >> /h",
    "rm-through-symlink": "ln -s {OUT} /esc; rm -rf /esc/; rm -rf /esc/*; rm -f /esc/sentinel",
    "rm-dotdot": "rm -rf ../../../../../..{OUT}",
    "find-delete": "ln -s {OUT} /esc; find /esc/ -name sentinel -delete; find / -name sentinel",
    "tar-extract-hostile": "mkdir -p /dst && tar -xf /evil.tar -C /dst; echo pwned >> /dst/esc/sentinel",
    "tar-create-through-symlink": "ln -s {OUT} /esc; tar -cf /out.tar /esc/; tar -tvf /out.tar; tar -xf /out.tar -C /",
    "chmod-chown-through-symlink": "ln -s {OUT}/sentinel /s; chmod 000 /s; chown 1234 /s; touch -h /s; touch /s",
    "mkdir-p-through-symlink": "ln -s {OUT} /esc; mkdir -p /esc/newdir; touch /esc/newfile",
    "tee-and-sed-in-place": "ln -s {OUT}/sentinel /s; echo pwned | tee /s; sed -i s/do/pwned/ /s",
    "realpath-and-readlink": "ln -s {OUT} /esc; realpath /esc; readlink -f /esc/sentinel; cd /esc && pwd -P",
    "env-leak": "env; printenv " + SECRET_ENV + "; echo ${" + SECRET_ENV + "}",
    "mktemp-and-tmpdir": "TMPDIR={OUT} mktemp; mktemp -p {OUT}; mktemp -d",
    "source-host-file": ". {OUT}/sentinel; source ../../../..{OUT}/sentinel",
    "exec-host-binary": "/bin/sh -c 'echo hi'; exec {OUT}/sentinel",
}


def _evil_tar(out: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, link in (("esc", tarfile.SYMTYPE, str(out)), ("../../pwned", tarfile.REGTYPE, ""),
                                 ("esc/sentinel", tarfile.REGTYPE, ""), ("h", tarfile.LNKTYPE, str(out) + "/sentinel"),
                                 (str(out) + "/sentinel", tarfile.REGTYPE, "")):
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.linkname = link
            data = b"pwned\n" if kind == tarfile.REGTYPE else b""
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_stays_in_root(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET_VALUE)
    guard = Guard(tmp_path)
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "evil.tar").write_bytes(_evil_tar(guard.dir))
    script = SCRIPTS[name].replace("{OUT}", str(guard.dir))
    try:
        result = sh.run_script(script, root=root, env={"PATH": "/bin", "HOME": "/"})
        output = result.stdout + result.stderr
    except MinibuildError as err:  # e.g. UnsupportedCommandError for an option the emulator lacks
        output = str(err).encode()
    except RecursionError:
        pytest.fail("the shell recursed without bound")
    guard.check(allowed=("root",))
    assert SENTINEL_TEXT.strip().encode() not in output, f"host file content reached the script: {output[:300]!r}"
    assert SECRET_VALUE.encode() not in output, "the host environment leaked into the script"
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p) and os.path.isfile(p):
                assert SENTINEL_TEXT.encode() not in Path(p).read_bytes(), f"host content copied into {p}"
            assert os.lstat(p).st_ino != os.stat(guard.sentinel).st_ino, f"{p} is a hard link of a host file"


def test_environment_is_exactly_what_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET_VALUE)
    root = tmp_path / "root"
    root.mkdir()
    result = sh.run_script("env", root=root, env={"A": "1", "PATH": "/bin"})
    lines = set(result.stdout.decode().splitlines())
    assert {"A=1", "PATH=/bin"} <= lines
    assert not any(line.startswith(SECRET_ENV) for line in lines)
    assert not any(line.startswith("HOME=" + os.environ.get("HOME", "/root")) and os.environ.get("HOME") != "/"
                   for line in lines)


DEVICE_PROBE = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from pathlib import Path
import minibuild.sh as sh
try:
    r = sh.run_script(sys.argv[2], root=Path(sys.argv[1]), env={"PATH": "/bin"})
    print("exit", r.exit_code, r.stdout.decode().strip())
except MemoryError:
    print("MemoryError")
"""


@pytest.mark.parametrize(("script", "expected"), [
    ("head -c 16 /dev/zero-node | wc -c", "exit 0 0"),  # head fails (EPERM), wc counts nothing
    ("echo hi > /dev/zero-node && echo wrote", "exit 1"),
    ("cat /dev/zero-node; echo rc=$?", "exit 0 rc=1"),
    ("cat < /dev/zero-node; echo rc=$?", "exit 0 rc=1"),
    ("echo hi >> /dev/fifo; echo rc=$?", "exit 0 rc=1"),  # a FIFO would block forever
    ("cat /dev/fifo; echo rc=$?", "exit 0 rc=1"),
    ("echo hi | tee /dev/zero-node >/dev/null; echo rc=$?", "exit 0 rc=1"),
    ("sed -i s/a/b/ /dev/zero-node; echo rc=$?", "exit 0 rc=1"),
    (". /dev/zero-node; echo rc=$?", "exit 2"),
])
def test_device_nodes_in_the_root_are_not_host_devices(tmp_path: Path, script: str, expected: str) -> None:
    """A char device 1:5 (the host's /dev/zero) and a FIFO that an image layer may carry are never opened:
    reading would exhaust memory (or block), writing would reach the host device."""
    import subprocess
    import sys

    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    os.mknod(root / "dev" / "zero-node", 0o666 | 0o020000, os.makedev(1, 5))  # what an image layer may carry
    os.mkfifo(root / "dev" / "fifo")
    proc = subprocess.run([sys.executable, "-c", DEVICE_PROBE, str(root), script], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
    assert proc.returncode == 0, proc.stderr[-300:]
    assert proc.stdout.strip() == expected
