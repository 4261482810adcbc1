"""The Executor protocol values, user resolution, confined paths, FakeExecutor, EmulateExecutor, get_executor."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from minibuild.executors.executor import (
    KNOWN_EXECUTORS,
    EmulateExecutor,
    Executor,
    FakeEffect,
    FakeExecutor,
    RunRequest,
    RunResult,
    ensure_workdir,
    resolve_in_root,
    resolve_user,
)
from minibuild.errors import ConfigError, ExecutorError, SourceSpan
from minibuild.executors.select import get_executor

PASSWD = """root:x:0:0:root:/root:/bin/sh
node:x:1000:1000::/home/node:/bin/sh
www:x:33:33:www:/var/www:/bin/false
# a comment
"""
GROUP = """root:x:0:
node:x:1000:
www:x:33:
audio:x:29:node,www
video:x:44:node
"""


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sh").symlink_to("busybox")  # as in real images; a RUN needs /bin/sh to exist
    return tmp_path


def test_request_is_frozen_and_env_keeps_last_duplicate(tmp_path: Path) -> None:
    req = RunRequest(root=tmp_path, argv=("/bin/sh", "-c", "true"), env=(("A", "1"), ("B", "2"), ("A", "3")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.workdir = "/x"  # type: ignore[misc]
    assert req.env_dict() == {"A": "3", "B": "2"}
    assert req == dataclasses.replace(req, span=SourceSpan(line=3))  # the span never changes equality


def test_result_ok() -> None:
    assert RunResult(exit_code=0).ok
    assert not RunResult(exit_code=2, stderr=b"boom").ok


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", (0, 0, (0,))),
        ("root", (0, 0, (0,))),
        ("node", (1000, 1000, (1000, 29, 44))),
        ("www", (33, 33, (33, 29))),
        ("1000", (1000, 1000, (1000, 29, 44))),
        ("4242", (4242, 0, (0,))),
        ("node:audio", (1000, 29, (29,))),
        ("node:7", (1000, 7, (7,))),
        ("4242:4343", (4242, 4343, (4343,))),
    ],
)
def test_resolve_user(root: Path, user: str, expected: tuple[int, int, tuple[int, ...]]) -> None:
    ident = resolve_user(root, user)
    assert (ident.uid, ident.gid, ident.groups) == expected


def test_resolve_user_home_and_name(root: Path) -> None:
    ident = resolve_user(root, "node")
    assert ident.name == "node" and ident.home == "/home/node"


def test_unknown_user_and_group_are_clear_errors(root: Path) -> None:
    with pytest.raises(ExecutorError, match="unable to find user ghost: no matching entries in passwd file"):
        resolve_user(root, "ghost")
    with pytest.raises(ExecutorError, match="unable to find group ghosts: no matching entries in group file"):
        resolve_user(root, "node:ghosts")


def test_root_without_passwd_still_knows_root(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "root").uid == 0
    assert resolve_user(tmp_path, "123").uid == 123
    with pytest.raises(ExecutorError):
        resolve_user(tmp_path, "node")


def test_passwd_symlink_cannot_reach_the_host(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    # absolute link: inside a chroot it means <root>/etc/shadow-like file, never the host's /etc/passwd
    (tmp_path / "etc" / "passwd").symlink_to("/../../../../etc/passwd-real")
    (tmp_path / "etc" / "passwd-real").write_text("app:x:77:88::/:/bin/sh\n")
    assert resolve_user(tmp_path, "app").uid == 77
    with pytest.raises(ExecutorError):
        resolve_user(tmp_path, "root:daemon")  # the host's /etc/group was not read either


def test_resolve_in_root_confines_dotdot_and_links(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "up").symlink_to("../../../..")
    (tmp_path / "abs").symlink_to("/a")
    assert resolve_in_root(tmp_path, "/../../x") == tmp_path / "x"
    assert resolve_in_root(tmp_path, "/a/up/etc") == tmp_path / "etc"
    assert resolve_in_root(tmp_path, "/abs/file") == tmp_path / "a" / "file"


def test_ensure_workdir_creates_and_follows_links(tmp_path: Path) -> None:
    (tmp_path / "srv").symlink_to("/data")
    host = ensure_workdir(tmp_path, "/srv/app/src")
    assert host == tmp_path / "data" / "app" / "src" and host.is_dir()
    assert ensure_workdir(tmp_path, "relative") == tmp_path / "relative"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExecutorError, match="not a directory"):
        ensure_workdir(tmp_path, "/file/sub")
    with pytest.raises(ExecutorError, match="not a directory"):
        ensure_workdir(tmp_path, "/file")


def test_get_executor_names() -> None:
    assert get_executor("emulate").name == "emulate"
    assert get_executor("chroot").name == "chroot"
    assert isinstance(get_executor("emulate"), Executor)
    assert isinstance(get_executor("chroot"), Executor)
    assert KNOWN_EXECUTORS == ("emulate", "chroot")
    with pytest.raises(ConfigError) as info:
        get_executor("docker")
    assert "unknown executor 'docker'" in str(info.value) and "emulate, chroot" in str(info.value)


def test_fake_executor_records_and_applies_effects(tmp_path: Path) -> None:
    fake = FakeExecutor(
        {
            "npm ci": FakeEffect(writes=(("node_modules/react/package.json", b"{}"),), mkdirs=("/cache",),
                                 stdout=b"added 1 package\n"),
            "/bin/sh -c exit 3": FakeEffect(exit_code=3, stderr=b"nope\n"),
            "rm stuff": FakeEffect(removes=("/old", "gone.txt"), symlinks=(("/link", "target"),)),
        }
    )
    assert isinstance(fake, Executor)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "f").write_text("x")
    r1 = fake.run(RunRequest(root=tmp_path, argv=("/bin/sh", "-c", "npm ci"), workdir="/app"))
    assert r1 == RunResult(exit_code=0, stdout=b"added 1 package\n")
    assert (tmp_path / "app" / "node_modules" / "react" / "package.json").read_bytes() == b"{}"
    assert (tmp_path / "cache").is_dir()
    assert fake.run(RunRequest(root=tmp_path, argv=("/bin/sh", "-c", "exit 3"))).exit_code == 3
    fake.run(RunRequest(root=tmp_path, argv=("rm", "stuff")))
    assert not (tmp_path / "old").exists() and (tmp_path / "link").is_symlink()
    assert fake.run(RunRequest(root=tmp_path, argv=("unscripted",))) == RunResult(exit_code=0)
    assert fake.commands == ("/bin/sh -c npm ci", "/bin/sh -c exit 3", "rm stuff", "unscripted")
    assert [r.workdir for r in fake.requests] == ["/app", "/", "/", "/"]


def test_fake_executor_strict_and_handler(tmp_path: Path) -> None:
    strict = FakeExecutor(default=None)
    with pytest.raises(ExecutorError, match="no scripted effect for 'make'"):
        strict.run(RunRequest(root=tmp_path, argv=("make",), span=SourceSpan(line=4)))
    seen: list[str] = []

    def handler(req: RunRequest) -> RunResult:
        seen.append(req.user)
        return RunResult(exit_code=7)

    fake = FakeExecutor(handler=handler)
    assert fake.run(RunRequest(root=tmp_path, argv=("x",), user="node")).exit_code == 7
    assert seen == ["node"] and len(fake.requests) == 1


def test_fake_effect_cannot_write_outside_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "esc").symlink_to("/../..")
    FakeExecutor({"w": FakeEffect(writes=(("/esc/outside.txt", b"x"),))}).run(RunRequest(root=root, argv=("w",)))
    assert (root / "outside.txt").exists() and not (tmp_path / "outside.txt").exists()


def _have_shell() -> bool:
    try:
        from minibuild import sh
    except ImportError:
        return False
    return hasattr(sh, "run_argv")


_HAVE_SH = _have_shell()
needs_sh = pytest.mark.skipif(not _HAVE_SH, reason="minibuild.sh (helper D's emulated shell) is not in this tree")


@needs_sh
def test_emulate_runs_in_root_with_exact_env(root: Path) -> None:
    res = EmulateExecutor().run(
        RunRequest(root=root, argv=("/bin/sh", "-c", 'echo "$GREETING" > out.txt; pwd; echo err >&2; exit 4'),
                   env=(("GREETING", "hello"), ("PATH", "/bin")), workdir="/work/dir")
    )
    assert res.exit_code == 4
    assert res.stdout == b"/work/dir\n" and res.stderr == b"err\n"
    assert (root / "work" / "dir" / "out.txt").read_text() == "hello\n"


@needs_sh
def test_emulate_does_not_see_host_env(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST_SECRET", "leak")
    res = EmulateExecutor().run(RunRequest(root=root, argv=("/bin/sh", "-c", 'echo "[$HOST_SECRET]"'), env=(("A", "1"),)))
    assert res.stdout == b"[]\n"


@needs_sh
@needs_sh
def test_emulate_without_bin_sh_fails_like_docker(tmp_path: Path) -> None:
    res = EmulateExecutor().run(RunRequest(root=tmp_path, argv=("/bin/sh", "-c", "true")))
    assert res.exit_code == 127 and b"/bin/sh" in res.stderr


@needs_sh
def test_emulate_user_becomes_uid(root: Path) -> None:
    res = EmulateExecutor().run(RunRequest(root=root, argv=("/bin/sh", "-c", "id -u; id -g"), user="node:audio"))
    assert res.stdout == b"1000\n29\n"


@needs_sh
def test_emulate_missing_command_is_127_with_a_hint(root: Path) -> None:
    res = EmulateExecutor().run(RunRequest(root=root, argv=("/bin/sh", "-c", "definitely-not-a-command --x"),
                                           env=(("PATH", "/bin"),), span=SourceSpan(line=12)))
    assert (res.exit_code, res.stderr) == (127, b"sh: definitely-not-a-command: not found\n")
    assert res.hint.startswith("definitely-not-a-command is neither") and "--executor chroot" in res.hint
    handled = EmulateExecutor().run(RunRequest(root=root, argv=("/bin/sh", "-c", "nope || echo fallback"),
                                               env=(("PATH", "/bin"),)))
    assert (handled.exit_code, handled.stdout) == (0, b"fallback\n")
