"""End to end through the CLI: a chroot-built busybox multi-stage image runs in Docker and matches the emulated build;
unsupported and failing RUN commands and attempts to leave the root are clear errors that leave the store clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import minibuild
from minibuild.executors.chroot import platform_problem
from tests.conftest import BUSYBOX_TAG
from tests.engines import Docker
from tests.support import require, require_root

TWO_STAGES = f"""\
FROM {BUSYBOX_TAG} AS build
RUN mkdir -p /out && echo "built by RUN" > /out/msg && chmod 640 /out/msg && echo "app:x:1000:1000::/home/app:/bin/sh" >> /etc/passwd
COPY note.txt /out/note.txt

FROM {BUSYBOX_TAG}
COPY --from=build /out/msg /msg
CMD ["sh", "-c", "cat /msg; echo from CMD"]
"""
# Debian's busybox-static (1.35) has no adduser/addgroup applets, so the RUN edits /etc/passwd with applets it has.


def mb(store: Path, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store), *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


def write_context(ctx: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (ctx / name).write_text(text)
    return ctx


def image_names(store: Path) -> set[str]:
    res = mb(store, "images")
    assert res.returncode == 0, res.stderr
    return {line.split()[0] for line in res.stdout.splitlines()[1:] if line.strip()}


def assert_store_clean(store: Path, names_before: set[str]) -> None:
    """fsck finds nothing, no temp build directory or lease is left, and the failed build named no image."""
    fsck = mb(store, "fsck")
    assert fsck.returncode == 0 and "no problems" in fsck.stdout + fsck.stderr, fsck.stdout + fsck.stderr
    assert list((store / ".minibuild" / "tmp").iterdir()) == []
    assert list((store / ".minibuild" / "leases").iterdir()) == []
    assert image_names(store) == names_before


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# --------------------------------------------------------------------------- chroot: a busybox image Docker runs

@pytest.mark.root
@pytest.mark.interop
def test_chroot_multistage_runs_in_docker_and_matches_emulated(docker: Docker, busybox_image: Path, tmp_path: Path) -> None:
    require_root()
    require(sys.platform.startswith("linux"), "the chroot executor needs Linux")
    require(platform_problem() is None, f"chroot executor unavailable: {platform_problem()}")
    ctx = write_context(tmp_path / "ctx", TWO_STAGES, {"note.txt": "from the context\n"})

    chroot_store, emu_store = tmp_path / "store-chroot", tmp_path / "store-emulate"
    for store in (chroot_store, emu_store):
        loaded = mb(store, "load", str(busybox_image))
        assert loaded.returncode == 0, loaded.stderr

    out = tmp_path / "out.tar"
    res = mb(chroot_store, "build", str(ctx), "--executor", "chroot", "-t", "chroot-demo", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr

    docker.run("load", "-i", str(out))
    ran = docker.run("run", "--rm", "--network", "none", "chroot-demo", timeout=120)
    assert ran.stdout.decode() == "built by RUN\nfrom CMD\n"

    # the build stage really ran under busybox: the context file and the passwd line are in the builder image
    target = tmp_path / "build-stage.tar"
    res = mb(chroot_store, "build", str(ctx), "--executor", "chroot", "--target", "build", "-o", str(target))
    assert res.returncode == 0, res.stderr
    builder = minibuild.load(target)
    assert builder.read("/out/note.txt") == b"from the context\n"
    assert "app:x:1000:1000::/home/app:/bin/sh" in builder.read_text("/etc/passwd").splitlines()

    # the emulated executor (separate store: no cache shared with the chroot build) gives the same /msg
    emu_out = tmp_path / "emu.tar"
    res = mb(emu_store, "build", str(ctx), "--executor", "emulate", "-t", "emu-demo", "-o", str(emu_out))
    assert res.returncode == 0, res.stderr
    real, emulated = minibuild.load(out).files["/msg"], minibuild.load(emu_out).files["/msg"]
    assert (real.type, real.mode, real.uid, real.gid) == ("file", 0o640, 0, 0)
    assert (emulated.type, emulated.mode, emulated.uid, emulated.gid) == (real.type, real.mode, real.uid, real.gid)
    assert emulated.read() == real.read() == b"built by RUN\n"


# --------------------------------------------------------------------------- emulated: clear errors, clean store

@pytest.fixture()
def store(tmp_path: Path) -> Path:
    """A store primed with the alpine fixture by one successful build."""
    s = tmp_path / "store"
    res = mb(s, "build", str(write_context(tmp_path / "prime", "FROM alpine\n")))
    assert res.returncode == 0, res.stderr
    return s


def test_unsupported_command_is_one_clear_line(store: Path, tmp_path: Path) -> None:
    before = image_names(store)
    ctx = write_context(tmp_path / "ctx", "FROM alpine\nWORKDIR /src\nRUN echo ok > /ok\nRUN gcc -o x x.c\n")
    res = mb(store, "build", str(ctx), "-t", "unsupported-demo")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    (line,) = error_lines(res.stderr)
    assert "Dockerfile:4" in line and "exit code 127" in line
    # then busybox's own words, and one line saying why: the last things said
    assert res.stderr[res.stderr.index(line):].splitlines()[1:] == [
        "sh: gcc: not found",
        "hint: gcc is neither an emulated builtin nor a shell script on PATH (see docs/shell.md); use --executor "
        "chroot to run the image's own programs"]
    assert_store_clean(store, before)

    # the failing step wrote no cache record: again, the steps before it are cached and it runs (and fails) again
    again = mb(store, "build", str(ctx), "-t", "unsupported-demo")
    assert again.returncode == 1
    progress = again.stderr.split("#4 [4/4] RUN gcc -o x x.c")
    assert len(progress) == 2 and progress[0].count("CACHED") == 3 and "CACHED" not in progress[1]


def test_failing_command_reports_line_exit_code_and_stderr_tail(store: Path, tmp_path: Path) -> None:
    before = image_names(store)
    ctx = write_context(tmp_path / "ctx", "FROM alpine\nRUN echo ok > /ok\nRUN sh -c 'echo oops >&2; exit 3'\n")
    res = mb(store, "build", str(ctx), "-t", "failing-demo", "-o", str(tmp_path / "never.tar"))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    (line,) = error_lines(res.stderr)
    assert "Dockerfile:3" in line and "exit code 3" in line
    assert res.stderr[res.stderr.index(line):].splitlines()[1:] == ["oops"]  # the stderr tail follows the error
    assert not (tmp_path / "never.tar").exists()
    assert_store_clean(store, before)


def test_paths_cannot_leave_the_root(store: Path, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    secret = host / "secret.txt"
    secret.write_text("HOST-SECRET\n")
    os.utime(secret, (1_000_000, 1_000_000))
    snapshot = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in host.rglob("*")}
    up = "../" * 12
    dockerfile = f"""\
FROM alpine
WORKDIR /a/b/c
RUN mkdir -p {host} && echo INSIDE > {secret}
RUN cat {up}{str(secret).lstrip('/')} > /read-dotdot
RUN ln -s /../../../../ /x && cp /x{secret} /read-symlink
RUN ln -s {secret} /lnk && echo WRITTEN > /lnk
RUN echo CREATED > {up}{str(host).lstrip('/')}/created
RUN cd / && cd ../../.. && pwd > /pwd && ls > /ls
RUN env > /env
"""
    env = dict(os.environ, HOST_ONLY_VARIABLE="must-not-leak")
    out = tmp_path / "escape.tar"
    res = mb(store, "build", str(write_context(tmp_path / "ctx", dockerfile)), "-o", str(out), env=env)
    assert res.returncode == 0, res.stderr

    # the host was neither read nor written
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in host.rglob("*")} == snapshot
    assert not (host / "created").exists()
    # every path resolved inside the root: reads saw the root's copy, writes landed in the image
    image = minibuild.load(out)
    assert image.read("/read-dotdot") == b"INSIDE\n"
    assert image.read("/read-symlink") == b"INSIDE\n"
    assert image.read(str(secret)) == b"WRITTEN\n"
    assert image.read(f"{host}/created") == b"CREATED\n"
    assert image.read("/pwd") == b"/\n"
    listed = image.read_text("/ls").split()
    assert "read-dotdot" in listed and "x" in listed and "work" not in listed
    assert b"HOST_ONLY_VARIABLE" not in image.read("/env")
    fsck = mb(store, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert list((store / ".minibuild" / "tmp").iterdir()) == []


def test_reading_a_host_only_path_is_a_clear_failure(store: Path, tmp_path: Path) -> None:
    secret = tmp_path / "host-only.txt"  # exists on the host, not in the root
    secret.write_text("HOST-SECRET\n")
    before = image_names(store)
    ctx = write_context(tmp_path / "ctx", f"FROM alpine\nRUN cp /../../..{secret} /stolen\n")
    res = mb(store, "build", str(ctx), "-t", "escape-demo")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and "HOST-SECRET" not in res.stderr
    (line,) = error_lines(res.stderr)
    assert "Dockerfile:2" in line and "exit code 1" in line
    assert secret.read_text() == "HOST-SECRET\n"
    assert_store_clean(store, before)
