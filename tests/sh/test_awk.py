"""The emulated awk on its own: what the agreement suite cannot check against busybox-static (expected by hand)."""

from __future__ import annotations

from pathlib import Path

import pytest

from minibuild.errors import ShellError, UnsupportedCommandError
from minibuild.limits import RunLimits
from minibuild.sh import run_script


def awk(root: Path, script: str, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    r = run_script(script, root=root, env={"PATH": "/bin"}, stdin=stdin)
    return r.exit_code, r.stdout, r.stderr


def test_math_functions_as_alpine_busybox_has_them(plain_root: Path) -> None:
    # Debian's busybox-static is built without libm ("Math support is not compiled in"); alpine's has it
    code, out, _ = awk(plain_root, "awk 'BEGIN { print 2^10, 2**3, -2^2, sqrt(16), exp(0), log(1), int(-3.9) }'")
    assert (code, out) == (0, b"1024 8 -4 4 1 0 -3\n")


def test_rand_and_clock_functions_stop_the_build_in_one_line(plain_root: Path) -> None:
    for fn in ("rand()", "srand()", "strftime()"):
        with pytest.raises(UnsupportedCommandError, match=r"awk: .*not available in the emulated shell"):
            awk(plain_root, f"awk 'BEGIN {{ print {fn} }}' || true")


def test_syntax_and_runtime_errors_are_one_line_exit_1(plain_root: Path) -> None:
    for prog in ("BEGIN { print substr(\"a\" }", "BEGIN { x = 1/0 }", "{ print $(-1) }", "BEGIN { printf \"%*d\", 1 }"):
        code, out, err = awk(plain_root, f"echo a | awk '{prog}'", )
        assert code == 1 and out == b"" and err.startswith(b"awk: ") and err.count(b"\n") == 1, (prog, err)


def test_redirection_writes_through_the_root(plain_root: Path) -> None:
    code, _, _ = awk(plain_root, "echo a b | awk '{ print $2 > \"/tmp/o\"; print $1 >> \"/tmp/o\" }'")
    assert code == 0 and (plain_root / "tmp" / "o").read_bytes() == b"b\na\n"


def test_a_runaway_loop_and_recursion_end_with_the_limits(plain_root: Path) -> None:
    with pytest.raises(ShellError):
        run_script("awk 'BEGIN { while (1) x++ }'", root=plain_root, env={}, limits=RunLimits(timeout=0.5))
    with pytest.raises(ShellError, match="awk: "):
        run_script("awk 'function f(n) { return f(n + 1) } BEGIN { f(1) }'", root=plain_root, env={},
                   limits=RunLimits(max_depth=50))


def test_install_modes_parents_and_directories(plain_root: Path) -> None:
    # Debian's busybox-static has no install applet; expected values are coreutils'/alpine busybox's by hand
    script = ("cd /tmp; echo x > src; chmod 600 src; install src dst; install -m 640 -D src a/b/c; "
              "install -d -m 700 d1 d2/e; install -t d1 src; echo y > old; install src old; "
              "stat -c '%a %n' dst a/b/c d1 d2/e d2 d1/src old; cat old")
    r = run_script(script, root=plain_root, env={"PATH": "/bin"})
    assert r.exit_code == 0, r.stderr
    assert r.stdout == b"755 dst\n640 a/b/c\n700 d1\n700 d2/e\n755 d2\n755 d1/src\n755 old\nx\n"
    with pytest.raises(UnsupportedCommandError):
        run_script("install -s /tmp/x /tmp/y", root=plain_root, env={})
