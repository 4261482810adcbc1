"""The one mode implementation (minibuild.fsperm): real busybox chmod is the reference, and COPY --chmod and the
emulated shell's chmod, which both use it, agree with each other."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from minibuild.engine.copy import copy_into
from minibuild.fsperm import parse_mode_spec
from minibuild.sh import run_script
from tests.support import require_tool

SPECS = [
    "o+t", "+t", "a+t", "u+t", "g+t", "o+s", "u+s", "g+s", "+s", "+x", "a+x", "u=rwX,go=rX", "g=u", "o=u", "+X",
    "o-x", "go-w", "u+rw,g+r,o-x,o+w", "=rw,+X", "u=g", "o=", "a=", "=", "+r", "a-t", "=t", "u=t", "-w", "o=t",
    "g=s", "=rX", "a=u", "go=u-w", "u+x,", "u+x,,g+w", "+", "u-", "+rwxXst", "-X", "ug=rw", "u=,g=u", "a-x+X",
    "0644", "7777", "0", "u", "ux", "g=ur", "10000", "8", "0o7", "644a", "u+z", ",u",
]
STARTS = [0o755, 0o644, 0o1755, 0o600, 0o4755, 0o2775, 0, 0o7777, 0o711]


@pytest.mark.parametrize("umask", [0o022, 0])
def test_modes_match_real_busybox_chmod(tmp_path: Path, umask: int) -> None:
    """Every spec x start mode x file/dir, chmodded by real busybox in one script, equals fsperm's answer;
    a spec busybox refuses is one fsperm refuses."""
    busybox = require_tool("busybox")
    cases: list[tuple[Path, str, int, bool]] = []
    lines = [f"umask {umask:03o}"]
    for i, spec in enumerate(SPECS):
        for j, start in enumerate(STARTS):
            for is_dir in (False, True):
                p = tmp_path / f"{i}-{j}-{'d' if is_dir else 'f'}"
                p.mkdir() if is_dir else p.write_bytes(b"")
                os.chmod(p, start)
                cases.append((p, spec, start, is_dir))
                quoted = "'" + spec + "'"
                lines.append(f"{busybox} chmod {quoted} {p} 2>/dev/null; echo $?")
    proc = subprocess.run([busybox, "sh", "-c", "\n".join(lines)], capture_output=True, text=True, check=True)
    codes = proc.stdout.split()
    assert len(codes) == len(cases)
    wrong = []
    for (p, spec, start, is_dir), code in zip(cases, codes):
        parsed = parse_mode_spec(spec)
        if code != "0":
            if parsed is not None:
                wrong.append(f"{spec!r}: busybox refuses it, fsperm accepts it")
            continue
        if parsed is None:
            wrong.append(f"{spec!r}: busybox accepts it, fsperm refuses it")
            continue
        real = stat.S_IMODE(os.lstat(p).st_mode)
        ours = parsed.apply(start, is_dir=is_dir, umask=umask)
        if ours != real:
            wrong.append(f"{spec!r} on {'dir' if is_dir else 'file'} {start:04o}: busybox {real:04o}, fsperm {ours:04o}")
    assert not wrong, "\n".join(sorted(set(wrong)))


@pytest.mark.parametrize("spec, start, expected", [
    ("o+t", 0o755, 0o755),  # busybox: "o" covers the other rwx only (GNU coreutils would give 1755)
    ("+t", 0o755, 0o1755),
    ("u+s,g-w", 0o775, 0o4755),
    ("u=rwX,go=rX", 0o700, 0o755),
    ("g=u", 0o750, 0o770),
])
def test_copy_chmod_and_shell_chmod_agree_on_a_directory(tmp_path: Path, spec: str, start: int, expected: int) -> None:
    """The two users of mode specs give the same mode for the same spec on the same directory."""
    ctx, dest = tmp_path / "ctx", tmp_path / "root"
    (ctx / "d").mkdir(parents=True)
    os.chmod(ctx / "d", start)
    dest.mkdir()
    copy_into(dest, ctx, ["."], "/copied/", chmod=spec)
    via_copy = stat.S_IMODE(os.lstat(dest / "copied" / "d").st_mode)

    (dest / "shell").mkdir()
    os.chmod(dest / "shell", start)
    result = run_script(f"chmod {spec} /shell", root=dest, env={"PATH": "/bin"})
    assert result.exit_code == 0, result.stderr
    via_shell = stat.S_IMODE(os.lstat(dest / "shell").st_mode)
    assert (via_copy, via_shell) == (expected, expected)


def test_file_type_names_every_kind_of_entry_and_maps_back(tmp_path: Path) -> None:
    """The one stat-mode <-> entry type mapping, on real entries of each kind."""
    import socket

    from minibuild.fsperm import ENTRY_TYPE_BITS, file_type

    (tmp_path / "f").write_bytes(b"")
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("f")
    os.mkfifo(tmp_path / "p")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "s"))
    s.close()
    kinds = {name: file_type(os.lstat(tmp_path / name).st_mode) for name in ("f", "d", "l", "p", "s")}
    assert kinds == {"f": "file", "d": "dir", "l": "symlink", "p": "fifo", "s": "socket"}
    for name, kind in kinds.items():
        assert ENTRY_TYPE_BITS[kind] == stat.S_IFMT(os.lstat(tmp_path / name).st_mode)
    assert file_type(stat.S_IFCHR | 0o600) == "char" and file_type(stat.S_IFBLK) == "block"
