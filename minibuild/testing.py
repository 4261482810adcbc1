"""Assertion helpers for tests of built images: files, modes, owners, content, env and config, with clear failures.

Every helper takes an ``ImageView`` (``minibuild.load(...)``, ``minibuild.view.open_image(...)``) or anything with
a ``.view`` attribute holding one (the ``BuiltImage`` the pytest plugin's fixtures return), raises a plain
``AssertionError`` whose message names the problem (a missing path lists the nearest existing paths, a wrong mode
shows both modes as ``-rw-r--r--`` and octal), and needs nothing but the standard library: it works under pytest,
unittest or a script.  Paths are absolute image paths; parent directories are resolved through symlinks as a
container would.
"""

from __future__ import annotations

import difflib
import re
import stat as _stat
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from minibuild.fsperm import ENTRY_TYPE_BITS

if TYPE_CHECKING:
    from minibuild.view import FileInfo, ImageView

__all__ = ["assert_config", "assert_env", "assert_file", "assert_no_file", "format_mode", "parse_mode"]

_UNSET: Any = object()
_TYPE_ALIASES = {"file": "file", "f": "file", "regular": "file", "dir": "dir", "d": "dir", "directory": "dir",
                 "symlink": "symlink", "link": "symlink", "l": "symlink", "char": "char", "block": "block",
                 "fifo": "fifo"}
_TYPE_WORDS = {"file": "a regular file", "dir": "a directory", "symlink": "a symbolic link",
               "char": "a character device", "block": "a block device", "fifo": "a named pipe"}
_LS_TYPES = {"-": "file", "d": "dir", "l": "symlink", "c": "char", "b": "block", "p": "fifo"}
_EXCERPT_BYTES = 600
_LISTED = 12
_CLOSEST_SCAN_LINES = 5000


# --------------------------------------------------------------------------------------------- small pure helpers
def _view(image: Any) -> ImageView:
    """The ImageView behind ``image`` (an ImageView, or an object with ``.view``)."""
    view = getattr(image, "view", image)
    if not (hasattr(view, "stat") and hasattr(view, "files") and hasattr(view, "config")):
        raise TypeError(f"expected a minibuild ImageView (or a built image with .view), got {type(image).__name__}")
    return view  # type: ignore[no-any-return]


def _target(image: Any) -> tuple[ImageView, str]:
    """The view behind ``image`` and a label naming it in messages (``image.label`` when the object has one)."""
    view = _view(image)
    label = getattr(image, "label", None)
    if not isinstance(label, str) or not label:
        names = getattr(view, "names", ())
        label = names[0] if names else f"image {view.digest.short}"
    return view, label


def format_mode(mode: int, type_: str = "file") -> str:
    """``-rw-r--r-- (0o644)``: ``ls -l`` letters for a ``type_`` entry with permission bits ``mode``, and octal."""
    bits = mode & 0o7777
    return f"{_stat.filemode(ENTRY_TYPE_BITS.get(type_, _stat.S_IFREG) | bits)} ({bits:#o})"


def parse_mode(mode: int | str) -> tuple[int, str | None]:
    """``(permission bits, type or None)`` of ``mode``: an int (``0o644``), octal digits (``"644"``, ``"0o4755"``)
    or ``ls -l`` letters (``"-rw-r--r--"``, ``"drwxr-xr-x"``, ``"-rwsr-xr-x"``, a 9-letter ``"rwxr-x---"``)."""
    if isinstance(mode, bool) or not isinstance(mode, (int, str)):
        raise TypeError(f"mode must be an int or a string, got {mode!r}")
    if isinstance(mode, int):
        if not 0 <= mode <= 0o7777:
            raise ValueError(f"mode {mode:#o} is not a permission mode (0 to 0o7777)")
        return mode, None
    text = mode.strip()
    digits = text[2:] if text.lower().startswith("0o") else text
    if digits and all(c in "01234567" for c in digits) and len(digits) <= 5:
        return parse_mode(int(digits, 8))
    if len(text) == 9:
        text = "-" + text
    if len(text) != 10 or text[0] not in _LS_TYPES:
        raise ValueError(f"cannot read mode {mode!r}: use octal (0o644, '644') or ls letters ('-rw-r--r--')")
    bits = 0
    for i, (allowed, bit) in enumerate(zip(("r", "w", "xsS", "r", "w", "xsS", "r", "w", "xtT"),
                                           (0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 0o4, 0o2, 0o1))):
        c = text[1 + i]
        if c == "-":
            continue
        if c not in allowed:
            raise ValueError(f"cannot read mode {mode!r}: {c!r} is not allowed at position {i + 2}")
        if c in "sStT":
            bits |= (0o4000, 0o2000, 0o1000)[i // 3]
        if c not in "ST":
            bits |= bit
    return bits, _LS_TYPES[text[0]]


def _describe(view: ImageView, info: FileInfo) -> str:
    """``a regular file (-rw-r--r-- (0o644), owner 0:0, 12 bytes), written by layer 3: COPY . .``"""
    parts = [format_mode(info.mode, info.type), f"owner {info.uid}:{info.gid}"]
    if info.type == "file":
        parts.append(f"{info.size} bytes")
    if info.type == "symlink":
        parts.append(f"-> {info.link_target}")
    if info.type == "dir":
        try:
            parts.append(f"{len(view.listdir(info.path))} entries")
        except Exception:  # noqa: BLE001 - a description must never fail
            pass
    text = f"{_TYPE_WORDS.get(info.type, info.type)} ({', '.join(parts)})"
    if 0 <= info.layer < len(view.layers):
        text += f", written by layer {info.layer}"
        made_by = view.layers[info.layer].instruction
        if made_by:
            text += f": {made_by}"
    return text


def _missing_message(view: ImageView, label: str, path: str) -> str:
    lines = [f"{path}: no such file or directory in {label}"]
    try:
        near = view.files.nearest(path)
    except Exception:  # noqa: BLE001 - e.g. '..' in the path: the plain message is still right
        near = ()
    if near:
        lines.append("nearest paths:")
        lines.extend(f"  {p}" for p in near)
    # the deepest ancestor that exists, and what it holds
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for depth in range(len(parts) - 1, -1, -1):
        ancestor = "/" + "/".join(parts[:depth])
        info = view.stat(ancestor, follow_symlinks=True)
        if info is None:
            continue
        if info.type != "dir":
            lines.append(f"{ancestor} exists but is {_TYPE_WORDS.get(info.type, info.type)}, not a directory")
            break
        names = view.listdir(ancestor)
        shown = ", ".join(names[:_LISTED]) + (f", ... ({len(names)} entries)" if len(names) > _LISTED else "")
        lines.append(f"{ancestor} holds: {shown or '(nothing)'}")
        break
    return "\n".join(lines)


def _excerpt(data: bytes) -> str:
    text = data[:_EXCERPT_BYTES].decode("utf-8", errors="replace")
    body = "\n".join("  | " + line for line in text.splitlines())
    if len(data) > _EXCERPT_BYTES:
        body += f"\n  | ... ({len(data) - _EXCERPT_BYTES} more bytes)"
    return body


def _content_problem(path: str, data: bytes, needle: str | bytes | re.Pattern[str] | re.Pattern[bytes]) -> str | None:
    """None when ``data`` contains ``needle`` (substring, or a regex searched), else the failure text."""
    if isinstance(needle, re.Pattern):
        subject: Any = data if isinstance(needle.pattern, bytes) else data.decode("utf-8", errors="replace")
        if needle.search(subject):
            return None
        what = f"a match for /{needle.pattern!s}/"
        wanted = needle.pattern if isinstance(needle.pattern, str) else needle.pattern.decode("utf-8", "replace")
    else:
        raw = needle.encode() if isinstance(needle, str) else needle
        if raw in data:
            return None
        what = repr(needle)
        wanted = raw.decode("utf-8", errors="replace")
    msg = f"{path} does not contain {what}"
    close = _closest_line(wanted.strip(), data.decode("utf-8", errors="replace").splitlines())
    if close is not None:
        msg += f"\n  closest line: {close!r}"
    return msg + f"\n  content ({len(data)} bytes):\n{_excerpt(data)}"


def _closest_line(wanted: str, lines: Sequence[str]) -> str | None:
    """The line sharing the longest run of characters with ``wanted`` (at least half of it), stripped."""
    best: str | None = None
    best_size = 0
    for line in lines[:_CLOSEST_SCAN_LINES]:
        text = line.strip()
        if not text:
            continue
        m = difflib.SequenceMatcher(None, wanted, text, autojunk=False).find_longest_match(0, len(wanted), 0, len(text))
        if m.size > best_size:
            best, best_size = text, m.size
    if best is None or best_size < 3 or best_size * 2 < len(wanted):
        return None
    return best


# --------------------------------------------------------------------------------------------- files
def assert_file(
    image: Any,
    path: str,
    *,
    type: str | None = None,  # noqa: A002 - the natural name for a file's type
    mode: int | str | None = None,
    uid: int | None = None,
    gid: int | None = None,
    contains: str | bytes | re.Pattern[str] | re.Pattern[bytes] | Sequence[str | bytes | re.Pattern[Any]] | None = None,
    link_target: str | None = None,
) -> FileInfo:
    """Assert ``path`` exists in ``image`` (not following a final symlink) and has every property given.

    ``type`` is ``file``, ``dir``/``directory``, ``symlink``/``link``, ``char``, ``block`` or ``fifo``; ``mode`` is
    compared on the permission bits (with setuid/setgid/sticky) and given as an int, octal string or ``ls -l``
    letters (whose first letter, when not ``-``, also checks the type); ``contains`` is a substring (str or bytes)
    or compiled regex (searched), or a list of them, checked in the file's content (symlinks followed).  Every
    mismatch is reported at once.  Returns the FileInfo for further checks.
    """
    __tracebackhide__ = True
    view, label = _target(image)
    info = view.stat(path)
    if info is None:
        raise AssertionError(_missing_message(view, label, path))
    problems: list[str] = []
    if type is not None:
        want = _TYPE_ALIASES.get(type.lower())
        if want is None:
            raise ValueError(f"unknown file type {type!r}: use one of file, dir, symlink, char, block, fifo")
        if info.type != want:
            problems.append(f"{path} is {_TYPE_WORDS.get(info.type, info.type)}, expected {_TYPE_WORDS[want]}")
    if mode is not None:
        bits, mode_type = parse_mode(mode)
        if mode_type is not None and mode_type != info.type and type is None:
            problems.append(f"{path} is {_TYPE_WORDS.get(info.type, info.type)}, expected {_TYPE_WORDS[mode_type]} "
                            f"(mode {mode!r})")
        if bits != info.mode & 0o7777:
            problems.append(f"{path} has the wrong mode:\n  expected: {format_mode(bits, mode_type or info.type)}"
                            f"\n  actual:   {format_mode(info.mode, info.type)}")
    if uid is not None and info.uid != uid:
        problems.append(f"{path} is owned by uid {info.uid}, expected uid {uid}")
    if gid is not None and info.gid != gid:
        problems.append(f"{path} is owned by gid {info.gid}, expected gid {gid}")
    if link_target is not None:
        if info.type != "symlink":
            problems.append(f"{path} is {_TYPE_WORDS.get(info.type, info.type)}, not a symbolic link to {link_target}")
        elif info.link_target != link_target:
            problems.append(f"{path} points to {info.link_target!r}, expected {link_target!r}")
    if contains is not None:
        needles = [contains] if isinstance(contains, (str, bytes, re.Pattern)) else list(contains)
        target = view.stat(path, follow_symlinks=True)
        if target is None:
            problems.append(f"{path} is a dangling symbolic link (-> {info.link_target}): no content to check")
        elif target.type != "file":
            problems.append(f"{path} is {_TYPE_WORDS.get(target.type, target.type)}: no content to check")
        else:
            data = target.read()
            problems.extend(p for p in (_content_problem(path, data, n) for n in needles) if p is not None)
    if problems:
        summary = f"{path} in {label}: {_describe(view, info)}"
        raise AssertionError("\n".join([*problems, summary]))
    return info


def assert_no_file(image: Any, path: str) -> None:
    """Assert nothing exists at ``path`` in ``image``; the failure says what is there and which layer wrote it."""
    __tracebackhide__ = True
    view, label = _target(image)
    info = view.stat(path)
    if info is not None:
        raise AssertionError(f"{path} should not exist in {label}, but it is {_describe(view, info)}")


# --------------------------------------------------------------------------------------------- env and config
def _env_problems(env: Mapping[str, str], expected: Mapping[str, str | re.Pattern[str] | None]) -> list[str]:
    problems = []
    for name, want in expected.items():
        have = env.get(name)
        if want is None:
            if have is not None:
                problems.append(f"{name} should be unset, but it is {have!r}")
            continue
        if have is None:
            hint = difflib.get_close_matches(name, list(env), n=1, cutoff=0.6)
            more = f" (did you mean {hint[0]}={env[hint[0]]!r}?)" if hint else ""
            problems.append(f"{name} is not set{more}; expected {_show(want)}")
        elif isinstance(want, re.Pattern):
            if not want.search(have):
                problems.append(f"{name}={have!r} does not match /{want.pattern}/")
        elif have != want:
            problems.append(f"{name}={have!r}, expected {want!r}")
    return problems


def _show(value: Any) -> str:
    return f"/{value.pattern}/" if isinstance(value, re.Pattern) else repr(value)


def assert_env(image: Any, expected: Mapping[str, str | re.Pattern[str] | None] | None = None, /,
               **variables: str | re.Pattern[str] | None) -> None:
    """Assert the image's environment has each variable given (``NAME="value"``, a compiled regex searched in the
    value, or ``None`` for "must be unset"); other variables may exist.  All mismatches are reported at once."""
    __tracebackhide__ = True
    view, label = _target(image)
    want = {**(expected or {}), **variables}
    problems = _env_problems(view.config.env, want)
    if problems:
        env_lines = "\n".join(f"  {item}" for item in view.config.env_list) or "  (empty)"
        raise AssertionError(f"environment of {label} does not match:\n"
                             + "\n".join(f"  {p}" for p in problems) + f"\nthe image's env:\n{env_lines}")


def _argv(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"give cmd/entrypoint as a list of words (exec form), got the string {value!r}; the shell "
                        f"form is stored as ['/bin/sh', '-c', {value!r}]")
    return tuple(value)


def _port(value: int | str) -> str:
    text = str(value)
    return text if "/" in text else f"{text}/tcp"


def _fmt_argv(value: tuple[str, ...] | None) -> str:
    return "unset" if value is None else "[" + ", ".join(f'"{w}"' for w in value) + "]"


def assert_config(
    image: Any,
    *,
    cmd: Sequence[str] | None = _UNSET,
    entrypoint: Sequence[str] | None = _UNSET,
    workdir: str = _UNSET,
    user: str = _UNSET,
    env: Mapping[str, str | re.Pattern[str] | None] = _UNSET,
    labels: Mapping[str, str | re.Pattern[str] | None] = _UNSET,
    exposed_ports: Iterable[int | str] = _UNSET,
    volumes: Iterable[str] = _UNSET,
    healthcheck: Sequence[str] | None = _UNSET,
    stop_signal: str | None = _UNSET,
) -> None:
    """Assert the image's runtime configuration: only the fields given are checked, all mismatches reported at once.

    ``cmd``/``entrypoint``/``healthcheck`` (its test, e.g. ``["CMD", "curl", "-f", "http://localhost/"]``) are
    word lists, ``None`` meaning unset; ``workdir``/``user`` strings (``""`` = unset); ``env`` and ``labels`` are
    checked key by key as in :func:`assert_env` (other keys may exist); ``exposed_ports`` (``80``, ``"80"`` or
    ``"53/udp"``; bare numbers mean tcp) and ``volumes`` must equal the image's set exactly.
    """
    __tracebackhide__ = True
    view, label = _target(image)
    cfg = view.config
    problems: list[str] = []
    for name, want, have in (("cmd", cmd, cfg.cmd), ("entrypoint", entrypoint, cfg.entrypoint)):
        if want is not _UNSET and _argv(want) != have:
            problems.append(f"{name} is {_fmt_argv(have)}, expected {_fmt_argv(_argv(want))}")
    for field, want_s, have_s in (("workdir", workdir, cfg.workdir), ("user", user, cfg.user)):
        if want_s is not _UNSET and (want_s or "") != have_s:
            problems.append(f"{field} is {have_s!r}, expected {want_s!r}")
    if stop_signal is not _UNSET and stop_signal != cfg.stop_signal:
        problems.append(f"stop signal is {cfg.stop_signal!r}, expected {stop_signal!r}")
    if env is not _UNSET:
        problems.extend(f"env: {p}" for p in _env_problems(cfg.env, env))
    if labels is not _UNSET:
        problems.extend(f"label {p}" for p in _env_problems(cfg.labels, labels))
    for name, want_raw, have_raw, norm in (("exposed ports", exposed_ports, cfg.exposed_ports, _port),
                                           ("volumes", volumes, cfg.volumes, str)):
        if want_raw is _UNSET:
            continue
        if isinstance(want_raw, (str, int)):
            want_raw = [want_raw]
        want_set = {norm(v) for v in want_raw}
        have_set = {norm(v) for v in have_raw}
        if want_set != have_set:
            missing = sorted(want_set - have_set)
            extra = sorted(have_set - want_set)
            detail = "; ".join(x for x in (f"missing {missing}" if missing else "",
                                           f"unexpected {extra}" if extra else "") if x)
            problems.append(f"{name} are {sorted(have_set)}, expected {sorted(want_set)} ({detail})")
    if healthcheck is not _UNSET:
        have_hc = cfg.healthcheck.test if cfg.healthcheck is not None else None
        want_hc = tuple(healthcheck) if healthcheck is not None else None
        if want_hc != have_hc:
            problems.append(f"healthcheck test is {_fmt_argv(have_hc)}, expected {_fmt_argv(want_hc)}")
    if problems:
        raise AssertionError(f"config of {label} does not match:\n" + "\n".join(f"  {p}" for p in problems))
