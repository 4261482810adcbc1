"""Names the shell knows besides its registries (its shells, ash's builtins, the default PATH); the missing hint."""

from __future__ import annotations

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHELLS = ("sh", "bash", "ash", "dash")
ASH_BUILTINS = frozenset({"echo", "printf", "test", "[", "[[", "kill", "true", "false"})  # errors say "sh: "
ACCOUNT_TOOLS = frozenset({"adduser", "addgroup", "useradd", "groupadd"})  # emulated only as busybox's (or absent)
SPECIAL = {"export", "readonly", "set", "unset", "eval", ".", "source", "exit", "return", "break", "continue",
           "shift", ":", "exec", "trap", "times"}


def missing_hint(name: str, binary: str | None = None) -> str:
    """One line saying why the emulated shell could not run `name` (the list of what it has: docs/shell.md)."""
    if binary:
        return f"{name} is a program in this image ({binary}), not a shell script or busybox applet the emulated " \
               f"shell can run: use --executor chroot"
    return f"{name} is neither an emulated builtin nor a shell script on PATH (see docs/shell.md); " \
           f"use --executor chroot to run the image's own programs"
