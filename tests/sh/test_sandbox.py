"""The emulated shell never reaches outside its root: symlink tricks, `..` chains, /proc, archives, env."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from minibuild.sh import run_script
from tests.sh.harness import tree_state


@pytest.fixture
def jail(tmp_path: Path) -> tuple[Path, Path]:
    """(root, sentinel): a root and a sentinel directory beside it holding a secret."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    sentinel = tmp_path / "sentinel"
    (sentinel / "dir").mkdir(parents=True)
    (sentinel / "secret").write_text("TOP SECRET\n")
    os.chmod(sentinel / "secret", 0o600)
    # planted links: host-absolute, relative escaping, absolute escaping
    (root / "hostabs").symlink_to(sentinel)
    (root / "relesc").symlink_to("../../../../sentinel")
    (root / "absesc").symlink_to("/../../sentinel")
    (root / "tohostsecret").symlink_to(sentinel / "secret")
    return root, sentinel


ATTACKS = {
    "cat_dotdot": "cat /../sentinel/secret; cat ../../sentinel/secret; cd ../../..; cat sentinel/secret",
    "read_via_links": "cat /hostabs/secret /relesc/secret /absesc/secret /tohostsecret; ls /hostabs",
    "write_via_redirect": "echo pwn > /tohostsecret; echo pwn > /hostabs/secret; echo pwn >> /relesc/secret; echo pwn > /../sentinel/secret",
    "write_via_tee_sed": "echo pwn | tee /tohostsecret /relesc/secret; sed -i s/TOP/PWN/ /tohostsecret /hostabs/secret",
    "mkdir_touch_through_links": "mkdir -p /hostabs/dir/new /relesc/new; touch /hostabs/dir/t /absesc/t /tohostsecret",
    "cp_mv_through_links": "cp /etc/passwd /tohostsecret; cp -r /etc /hostabs/; cp -a /hostabs /copy; mv /etc/group /relesc/g; cp /tohostsecret /stolen",
    "ln_through_links": "ln -sf /etc/passwd /hostabs/secret; ln /tohostsecret /hard; ln -s x /relesc/newlink; ln /../sentinel/secret /h2",
    "chmod_chown_through_links": "chmod 777 /tohostsecret /hostabs/secret /relesc; chmod -R 777 /hostabs /relesc; chown -R 1:1 /hostabs /relesc/secret",
    "rm_through_links": "rm -rf /hostabs/ /relesc/dir /absesc/* /tohostsecret/..; rm -f /relesc/secret; rm -rf /",
    "find_grep_follow": "find -L / -name secret; grep -r TOP /; find / -name secret -exec cat {} \\;",
    "proc_refused": "cat /proc/self/environ; ls /proc/self/root; cd /proc/self/root && cat ../sentinel/secret; cat /proc/1/root/etc/passwd",
    "cd_escape": "cd /hostabs && pwd && echo x > new; cd /relesc; cd ..; cd ..; pwd; echo y > escaped",
    "glob_through_links": "echo /hostabs/* /relesc/* /../*; for f in /../sentinel/*; do cat \"$f\"; done",
    "tar_create_from_links": "tar -cf /t.tar /hostabs /relesc /tohostsecret; tar -tvf /t.tar; mkdir /x; tar -xf /t.tar -C /x",
    "dot_source_escape": ". /tohostsecret; . /../sentinel/secret; sh /hostabs/secret",
}


def _sentinel_state(sentinel: Path) -> dict[str, tuple[object, ...]]:
    return tree_state(sentinel)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_never_reaches_sentinel(jail: tuple[Path, Path], name: str) -> None:
    root, sentinel = jail
    before = _sentinel_state(sentinel)
    r = run_script(ATTACKS[name], root=root, env={"PATH": "/bin"})
    assert _sentinel_state(sentinel) == before
    assert b"TOP SECRET" not in r.stdout
    assert (sentinel / "secret").read_text() == "TOP SECRET\n"
    assert os.stat(sentinel / "secret").st_mode & 0o777 == 0o600


def test_path_lookup_cannot_escape(jail: tuple[Path, Path]) -> None:
    from minibuild.errors import UnsupportedCommandError

    root, sentinel = jail
    (sentinel / "tool").write_text("#!/bin/sh\necho escaped\n")
    os.chmod(sentinel / "tool", 0o755)
    with pytest.raises(UnsupportedCommandError):
        run_script("PATH=/hostabs:/../sentinel:/relesc; tool", root=root, env={})


def test_rm_rf_root_keeps_the_root_dir_and_the_sentinel(jail: tuple[Path, Path]) -> None:
    root, sentinel = jail
    r = run_script("rm -rf /", root=root, env={})
    assert r.exit_code == 0
    assert root.is_dir() and os.listdir(root) == []
    assert (sentinel / "secret").read_text() == "TOP SECRET\n"


def test_writes_through_absolute_links_land_inside_root(jail: tuple[Path, Path]) -> None:
    root, sentinel = jail
    (root / "real").mkdir()
    (root / "link").symlink_to("/real")
    run_script("echo inside > /link/f; mkdir -p /absesc/made", root=root, env={})
    assert (root / "real" / "f").read_text() == "inside\n"
    assert (root / "sentinel" / "made").is_dir()  # /../../sentinel clamps to /sentinel in the root
    assert not (sentinel / "made").exists()


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def test_tar_extract_symlink_then_file_trick_stays_inside(jail: tuple[Path, Path]) -> None:
    root, sentinel = jail
    link = tarfile.TarInfo("esc")
    link.type = tarfile.SYMTYPE
    link.linkname = str(sentinel)
    rel = tarfile.TarInfo("up")
    rel.type = tarfile.SYMTYPE
    rel.linkname = "../../../.."
    f1 = tarfile.TarInfo("esc/secret")
    f1.size = 4
    f2 = tarfile.TarInfo("up/sentinel/secret")
    f2.size = 4
    f3 = tarfile.TarInfo("../../sentinel/secret")
    f3.size = 4
    f4 = tarfile.TarInfo("/abs/file")
    f4.size = 4
    hard = tarfile.TarInfo("hl")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "../../sentinel/secret"
    (root / "evil.tar").write_bytes(_tar([(f4, b"abs!"), (link, None), (rel, None), (f1, b"pwn!"), (f2, b"pwn!"),
                                           (f3, b"pwn!"), (hard, None)]))
    before = _sentinel_state(sentinel)
    run_script("mkdir /out; tar -xf /evil.tar -C /out; tar -xf /evil.tar", root=root, env={})
    assert _sentinel_state(sentinel) == before
    assert (root / "out" / "abs" / "file").read_bytes() == b"abs!"


def test_no_host_environment_leaks(jail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = jail
    monkeypatch.setenv("MINIBUILD_HOST_ONLY", "leak")
    r = run_script("env; echo \"[$MINIBUILD_HOST_ONLY][$HOME][$USER]\"; printenv MINIBUILD_HOST_ONLY", root=root,
                   env={"ONLY": "this"})
    assert r.stdout == b"ONLY=this\nPWD=/\nSHLVL=1\n[][][]\n"  # plus what the shell itself exports, as ash does
    assert r.exit_code == 1


def test_dev_streams_are_emulated(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    r = run_script("echo out > /dev/stdout; echo err > /dev/stderr; echo gone > /dev/null; cat /dev/null; ls /dev", root=root, env={})
    assert r.stdout == b"out\n"
    assert r.stderr.startswith(b"err\n")
    assert not (root / "dev").exists()


def test_host_process_and_network_commands_are_not_available(jail: tuple[Path, Path]) -> None:
    from minibuild.errors import UnsupportedCommandError

    root, _ = jail
    for cmd in ("curl http://example.com", "wget -q x", "python3 -c 1", "/usr/bin/apt-get update"):
        if cmd.startswith("/usr/bin/"):
            r = run_script(cmd, root=root, env={"PATH": "/usr/bin"})
            assert r.exit_code == 127
            continue
        with pytest.raises(UnsupportedCommandError):
            run_script(cmd, root=root, env={"PATH": "/usr/bin:/bin"})


def test_dev_zero_is_emulated_for_bounded_reads_only(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    r = run_script("head -c 16 /dev/zero | wc -c; head -c 3 /dev/zero > /z; cat /dev/zero; echo rc=$?",
                   root=root, env={})
    assert r.stdout == b"16\nrc=1\n"
    assert (root / "z").read_bytes() == b"\0\0\0"
    assert b"cat: /dev/zero: endless input" in r.stderr


@pytest.mark.parametrize("script", ["head -c 8 /dev/urandom", "cat /dev/random", "read x < /dev/urandom"])
def test_random_devices_are_refused_clearly(jail: tuple[Path, Path], script: str) -> None:
    from minibuild.errors import UnsupportedCommandError

    with pytest.raises(UnsupportedCommandError, match="/dev/u?random is not available in the emulated shell"):
        run_script(script, root=jail[0], env={})


def test_regular_file_prefix_read_is_bounded(jail: tuple[Path, Path]) -> None:
    root, _ = jail
    (root / "big").write_bytes(b"a" * 100_000 + b"\n")
    r = run_script("head -c 5 /big; head -c 0 /big | wc -c; head -n 1 /big | wc -c", root=root, env={})
    assert r.stdout == b"aaaaa0\n100001\n"
