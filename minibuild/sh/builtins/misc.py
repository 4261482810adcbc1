"""Small busybox applets RUN lines use: nproc, arch, install, dd, cmp, base64, groups, tty."""

from __future__ import annotations

import base64 as b64
import binascii
import os
import platform
import posixpath
import re

from minibuild.errors import UnsupportedCommandError
from minibuild.sh.builtins.base import REGISTRY, Ctx, UsageError, builtin, parse_flags
from minibuild.sh.fs import vnorm


@builtin("nproc")
def nproc(ctx: Ctx, args: list[str]) -> int:
    """The processors this build may use (busybox: sched_getaffinity; --all counts the online ones)."""
    ignore = 0
    everything = False
    for a in args:
        if a == "--all":
            everything = True
        elif a.startswith("--ignore="):
            try:
                ignore = int(a.split("=", 1)[1])
            except ValueError:
                ctx.err(f"invalid number '{a.split('=', 1)[1]}'")
                return 1
        else:
            raise UsageError(f"unrecognized option '{a}'")
    n = (os.cpu_count() or 1) if everything else len(os.sched_getaffinity(0))
    ctx.out(f"{max(n - ignore, 1)}\n")
    return 0


@builtin("arch")
def arch(ctx: Ctx, args: list[str]) -> int:
    ctx.out(platform.machine() + "\n")
    return 0


@builtin("tty")
def tty(ctx: Ctx, args: list[str]) -> int:
    """A RUN step has no terminal."""
    if "-s" not in args:
        ctx.out("not a tty\n")
    return 1


@builtin("groups")
def groups(ctx: Ctx, args: list[str]) -> int:
    return REGISTRY["id"](Ctx(ctx.shell, "id", ctx.env, ctx.stdin, ctx.stdout, ctx.stderr), ["-Gn", *args])


@builtin("base64")
def base64_(ctx: Ctx, args: list[str]) -> int:
    opts, files = parse_flags(args, "d", "w")
    if len(files) > 1:
        raise UsageError("extra operand")
    try:
        data = ctx.read_input(files[0] if files else "-")
    except OSError as e:
        ctx.oserr(e, files[0] if files else "-")
        return 1
    if opts.get("d"):
        text = re.sub(rb"\s", b"", data)
        try:
            ctx.out(b64.b64decode(text + b"=" * (-len(text) % 4)))
        except (binascii.Error, ValueError):
            ctx.err("invalid input")
            return 1
        return 0
    width = int(str(opts.get("w", "76")))
    enc = b64.b64encode(data)
    if width > 0:
        enc = b"\n".join(enc[i:i + width] for i in range(0, len(enc), width))
    ctx.out(enc + b"\n" if enc else b"")
    return 0


@builtin("cmp")
def cmp(ctx: Ctx, args: list[str]) -> int:
    opts, files = parse_flags(args, "ls")
    if not files or len(files) > 4:
        raise UsageError("usage: cmp [-ls] FILE1 [FILE2]")
    names = files[:2] if len(files) > 1 else [files[0], "-"]
    try:
        a, b = (ctx.read_input(n) for n in names)
    except OSError as e:
        ctx.oserr(e)
        return 2
    code = 0
    line = 1
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            code = 1
            if opts.get("s"):
                break
            if not opts.get("l"):
                ctx.out(f"{names[0]} {names[1]} differ: char {i + 1}, line {line}\n")
                break
            ctx.out(f"{i + 1} {x:o} {y:o}\n")
        if x == 0x0A:
            line += 1
    else:
        if len(a) != len(b):
            if not opts.get("s"):
                ctx.err(f"EOF on {names[0] if len(a) < len(b) else names[1]}")
            code = 1
    return code


_DD_SUFFIX = {"": 1, "c": 1, "w": 2, "b": 512, "kB": 1000, "K": 1024, "k": 1024, "MB": 1000**2, "M": 1024**2,
              "GB": 1000**3, "G": 1024**3}


def _dd_number(text: str) -> int:
    total = 1
    for part in text.split("x"):
        m = re.fullmatch(r"(\d+)([a-zA-Z]*)", part)
        if not m or m.group(2) not in _DD_SUFFIX:
            raise UsageError(f"invalid number '{text}'")
        total *= int(m.group(1)) * _DD_SUFFIX[m.group(2)]
    return total


@builtin("dd")
def dd(ctx: Ctx, args: list[str]) -> int:
    ops: dict[str, str] = {}
    for a in args:
        key, eq, val = a.partition("=")
        if not eq or key not in ("if", "of", "bs", "ibs", "obs", "count", "skip", "seek", "conv", "status",
                                 "iflag", "oflag"):
            raise UsageError(f"unknown operand {a}")
        ops[key] = val
    conv = set(filter(None, ops.get("conv", "").split(",")))
    iflag = set(filter(None, ops.get("iflag", "").split(",")))
    oflag = set(filter(None, ops.get("oflag", "").split(",")))
    unknown = (conv - {"notrunc", "sync", "noerror", "fsync", "fdatasync"}) | (iflag - {"skip_bytes",
                                                                                        "fullblock", "count_bytes"}) \
        | (oflag - {"seek_bytes", "append"})
    if unknown:
        raise UnsupportedCommandError(f"dd: {','.join(sorted(unknown))} is not available in the emulated shell; "
                                      f"use --executor chroot", command="dd")
    ibs = obs = _dd_number(ops["bs"]) if "bs" in ops else 512
    ibs = _dd_number(ops["ibs"]) if "ibs" in ops and "bs" not in ops else ibs
    obs = _dd_number(ops["obs"]) if "obs" in ops and "bs" not in ops else obs
    skip = _dd_number(ops.get("skip", "0")) * (1 if "skip_bytes" in iflag else ibs)
    count = _dd_number(ops["count"]) * (1 if "count_bytes" in iflag else ibs) if "count" in ops else None
    seek = _dd_number(ops.get("seek", "0")) * (1 if "seek_bytes" in oflag else obs)
    src = ops.get("if", "-")
    try:
        data = ctx.read_input(src, None if count is None else skip + count)[skip:]
    except OSError as e:
        ctx.oserr(e, src)
        return 1
    if count is not None:
        data = data[:count]
    full_in, part_in = divmod(len(data), ibs)
    if "sync" in conv and part_in:
        data += bytes(ibs - part_in)
    if "of" in ops:
        host = ctx.path(ops["of"])
        try:
            old = b""
            if ("notrunc" in conv or seek or "append" in oflag) and os.path.exists(host):
                old = ctx.fs.read_bytes(host)
            if "append" in oflag:
                new = old + data
            else:
                base = old[:seek] + bytes(max(seek - len(old), 0))
                new = base + data + (old[seek + len(data):] if "notrunc" in conv else b"")
            with ctx.fs.open_write(host) as fh:
                fh.write(new)
        except OSError as e:
            ctx.oserr(e, ops["of"])
            return 1
    else:
        ctx.out(data)
    full_out, part_out = divmod(len(data), obs)
    if ops.get("status") != "none":
        ctx.stderr.write(f"{full_in}+{1 if part_in else 0} records in\n{full_out}+{1 if part_out else 0} records "
                         f"out\n".encode())
    return 0


@builtin("install")
def install(ctx: Ctx, args: list[str]) -> int:
    """busybox install: copy with mode (0755), owner, group; -d makes directories, -D the destination's parents."""
    opts, rest = parse_flags(args, "cdDpsvC", "ogmtS")
    if opts.get("s"):
        raise UnsupportedCommandError("install -s runs strip(1), a program the emulated shell does not have; use "
                                      "--executor chroot", command="install")

    def run(name: str, argv: list[str]) -> int:
        return REGISTRY[name](Ctx(ctx.shell, name, ctx.env, ctx.stdin, ctx.stdout, ctx.stderr), argv)

    mode = str(opts.get("m", "755"))
    code = 0

    def finish(path: str) -> None:
        nonlocal code
        code |= run("chmod", [mode, path])
        if "o" in opts:
            code |= run("chown", [f"{opts['o']}:{opts['g']}" if "g" in opts else str(opts["o"]), path])
        elif "g" in opts:
            code |= run("chgrp", [str(opts["g"]), path])

    if opts.get("d"):
        if not rest:
            raise UsageError("missing operand")
        for d in rest:
            if run("mkdir", ["-p", d]):
                return 1
            finish(d)
        return code
    target = str(opts["t"]) if "t" in opts else None
    if target is None:
        if len(rest) < 2:
            raise UsageError("missing operand")
        *sources, dest = rest
    else:
        sources, dest = rest, target
    if not sources:
        raise UsageError("missing operand")
    into = target is not None or len(sources) > 1 or os.path.isdir(ctx.path(dest))
    if opts.get("D"):
        parent = dest if into else posixpath.dirname(vnorm(dest, ctx.cwd))
        if parent and run("mkdir", ["-p", parent]):
            return 1
    for s in sources:
        out = posixpath.join(dest, posixpath.basename(s.rstrip("/"))) if into else dest
        host = ctx.path(out, follow=False)
        if os.path.lexists(host) and not os.path.isdir(host):
            os.unlink(host)
        if run("cp", (["-p"] if opts.get("p") else []) + [s, out]):
            code = 1
            continue
        finish(out)
    return code

