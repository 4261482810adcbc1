"""Archive builtins confined to the root: tar (c/x/t, z/j/J, f, C, strip-components, exclude), gzip, gunzip, zcat."""

from __future__ import annotations

import bz2
import gzip as gz
import io
import lzma
import os
import shutil
import stat
import tarfile
from functools import lru_cache
from typing import IO, BinaryIO, cast
import time

from minibuild.boundedtar import open_tar
from minibuild.errors import ImageFormatError, ShellError
from minibuild.limits import DECOMPRESS_ERRORS, open_decompressed
from minibuild.store.tarlayer import EntryType
from minibuild.sh.builtins.base import Ctx, UsageError, builtin
from minibuild.sh.builtins.fileops import mode_string
from minibuild.sh.builtins.accounts import group_name, lookup_gid, lookup_uid, user_name
from minibuild.sh.fs import vnorm
from minibuild.sh.pattern import compile_pattern, unquoted
from minibuild.wildcard import Wildcard
from minibuild.sh.streams import enc


_TYPE_BITS = {tarfile.DIRTYPE: stat.S_IFDIR, tarfile.SYMTYPE: stat.S_IFLNK, tarfile.CHRTYPE: stat.S_IFCHR,
              tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: stat.S_IFIFO}


def _compress(data: bytes, kind: str | None) -> bytes:
    if kind == "z":
        buf = io.BytesIO()
        with gz.GzipFile(fileobj=buf, mode="wb", filename="", mtime=0) as g:
            g.write(data)
        return buf.getvalue()
    if kind == "j":
        return bz2.compress(data)
    if kind == "J":
        return lzma.compress(data)
    return data


def _inflate(src: BinaryIO, what: str, *, gzip_only: bool = False) -> BinaryIO:
    """The uncompressed bytes of ``src`` (gzip, bzip2, xz or plain), produced in bounded chunks and stopped with
    ShellError past MINIBUILD_MAX_LAYER_BYTES: a decompression bomb never fills memory or the disk."""
    if gzip_only and isinstance(src, io.BufferedReader) and src.peek(2)[:2] != b"\x1f\x8b":
        raise gz.BadGzipFile("not in gzip format")
    return open_decompressed(src, what=f"{what} (in the emulated shell)", error=ShellError)


@lru_cache(maxsize=256)
def _exclude_pattern(pattern: str) -> Wildcard:
    return compile_pattern(unquoted(pattern))


def _matches(pattern: str, name: str) -> bool:
    """``--exclude`` matching: a shell pattern, through the shell's linear-time matcher."""
    return _exclude_pattern(pattern).match(name)


def _copy_out(ctx: Ctx, src: IO[bytes]) -> None:
    """Write ``src`` to the builtin's stdout in bounded chunks."""
    while chunk := src.read(1 << 20):
        ctx.shell.check_time()
        ctx.out(chunk)


def _parse_tar_args(args: list[str]) -> tuple[dict[str, object], list[str]]:
    exclude: list[str] = []
    opts: dict[str, object] = {"exclude": exclude}
    rest: list[str] = []
    queue = list(args)
    if queue and not queue[0].startswith("-"):
        queue[0] = "-" + queue[0]
    pending: list[str] = []
    while queue:
        a = queue.pop(0)
        if a.startswith("--"):
            name, _, val = a[2:].partition("=")
            if name == "exclude":
                exclude.append(val)
            elif name == "strip-components":
                opts["strip"] = int(val)
            elif name in ("directory",):
                opts["C"] = val
            elif name in ("file",):
                opts["f"] = val
            elif name in ("gzip", "gunzip"):
                opts["z"] = True
            elif name in ("create", "extract", "list"):
                opts[{"create": "c", "extract": "x", "list": "t"}[name]] = True
            elif name in ("numeric-owner", "no-same-owner", "no-same-permissions", "overwrite", "owner", "group", "mtime", "sort"):
                if name == "no-same-owner":
                    opts["o"] = True
            else:
                raise UsageError(f"unrecognized option '--{name}'")
            continue
        if a.startswith("-") and len(a) > 1:
            for c in a[1:]:
                if c in "fCXT":
                    pending.append(c)
                elif c in "cxtzjJvpohOkmP":
                    opts[c] = True
                else:
                    raise UsageError(f"invalid option -- '{c}'")
            while pending:
                c = pending.pop(0)
                if not queue:
                    raise UsageError(f"option requires an argument -- '{c}'")
                opts[c] = queue.pop(0)
            continue
        rest.append(a)
    return opts, rest


@builtin("tar")
def tar(ctx: Ctx, args: list[str]) -> int:
    try:
        opts, names = _parse_tar_args(args)
    except UsageError as e:
        ctx.err(str(e))
        return 1
    base = vnorm(str(opts.get("C", ".")), ctx.cwd)
    fname = opts.get("f")
    try:
        if opts.get("c"):
            return _create(ctx, opts, names, base, fname)
        if opts.get("x") or opts.get("t"):
            src: BinaryIO
            if fname in (None, "-") or vnorm(str(fname), ctx.cwd) in ("/dev/stdin", "/dev/fd/0"):
                src = cast(BinaryIO, io.BufferedReader(io.BytesIO(ctx.stdin.read())))
            else:
                try:
                    src = ctx.fs.open_read(ctx.path(str(fname)))
                except OSError as e:
                    ctx.err(f"can't open '{fname}': {e.strerror or e}")
                    return 1
            with src, _inflate(src, f"tar archive {fname or '-'}") as plain:
                return _extract(ctx, opts, names, base, plain)
    except (OSError, tarfile.TarError, EOFError, gz.BadGzipFile, lzma.LZMAError, ImageFormatError) as e:
        ctx.err(getattr(e, "strerror", None) or str(e))
        return 1
    ctx.err("need one of c, x, t")
    return 1


def _create(ctx: Ctx, opts: dict[str, object], names: list[str], base: str, fname: object) -> int:
    buf = io.BytesIO()
    code = 0
    excludes = list(opts["exclude"])  # type: ignore[call-overload]
    seen_links: dict[tuple[int, int], str] = {}  # (dev, inode) of a multiply-linked file -> its first name
    listing = ctx.stdout if fname not in (None, "-") else ctx.stderr  # -v names go where the archive does not

    def add(vpath: str, arc: str) -> None:
        nonlocal code
        if any(_matches(x, os.path.basename(arc)) or _matches(x, arc) for x in excludes):
            return
        host = ctx.fs.path(vpath, "/", follow=bool(opts.get("h")))
        st = ctx.fs.stat(host) if opts.get("h") else ctx.fs.lstat(host)
        if out_host is not None and os.path.exists(out_host) and os.path.samestat(st, ctx.fs.stat(out_host)):
            ctx.err(f"{arc}: file is the archive; skipping")
            return
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFSOCK:
            ctx.err(f"{arc}: socket ignored")
            return
        name = arc.rstrip("/") + "/" if kind == stat.S_IFDIR else arc
        link = ""
        size = 0
        if kind != stat.S_IFDIR and st.st_nlink > 1 and (st.st_dev, st.st_ino) in seen_links:
            typeflag, link = b"1", seen_links[(st.st_dev, st.st_ino)]
        elif kind == stat.S_IFREG:
            typeflag, size = b"0", st.st_size
        elif kind == stat.S_IFLNK:
            typeflag, link = b"2", os.readlink(host)
        else:
            typeflag = {stat.S_IFDIR: b"5", stat.S_IFCHR: b"3", stat.S_IFBLK: b"4", stat.S_IFIFO: b"6"}[kind]
        if kind != stat.S_IFDIR and st.st_nlink > 1:
            seen_links.setdefault((st.st_dev, st.st_ino), name)
        dev = (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in (stat.S_IFCHR, stat.S_IFBLK) else None
        buf.write(tar_header(name, st.st_mode & 0o7777, st.st_uid, st.st_gid, size, max(int(st.st_mtime), 0),
                             typeflag, link, user_name(ctx, st.st_uid), group_name(ctx, st.st_gid), dev))
        if typeflag == b"0":
            with ctx.fs.open_read(host) as f:
                left = size
                while left and (piece := f.read(min(left, 1 << 20))):
                    buf.write(piece)
                    left -= len(piece)
            buf.write(bytes(left + (-size % 512)))  # a file that shrank is padded to its header's size
        if buf.tell() > ctx.shell.limits.max_bytes:  # the archive is made in memory: bounded like any value
            raise ShellError("sh: " + ctx.shell.limits.bytes_message("the archive tar -c makes"))
        if opts.get("v"):
            listing.write(enc(name + "\n"))
        if kind == stat.S_IFDIR:
            for n in sorted(ctx.fs.listdir(host)):
                add(vpath.rstrip("/") + "/" + n, arc.rstrip("/") + "/" + n)

    out_host = ctx.path(str(fname)) if fname not in (None, "-") else None
    if out_host is not None:  # busybox creates the archive before it reads the operands
        ctx.fs.open_write(out_host).close()
    for n in names:
        arc = n.lstrip("/") or "."
        v = vnorm(n, base)
        try:
            ctx.fs.lstat(ctx.fs.path(v, "/", follow=False))
        except OSError as e:
            ctx.err(f"{n}: {e.strerror}")
            code = 1
            continue
        if n.startswith("/") and n != "/":
            arc = n.lstrip("/")
        add(v, arc)
    buf.write(bytes(1024))  # busybox ends with two zero blocks and no padding to a 10240-byte record
    kind = next((k for k in "zjJ" if opts.get(k)), None)
    data = _compress(buf.getvalue(), kind)
    if fname in (None, "-"):
        ctx.out(data)
    else:
        with ctx.fs.open_write(ctx.path(str(fname))) as f:
            f.write(data)
    if code:  # busybox: after the archive is written
        ctx.err("error exit delayed from previous errors")
    return code


def tar_header(name: str, mode: int, uid: int, gid: int, size: int, mtime: int, typeflag: bytes, link: str,
               uname: str, gname: str, dev: tuple[int, int] | None) -> bytes:
    """The 512-byte header(s) busybox tar writes: GNU magic, ././@LongLink records for names of 100 bytes or more."""
    out = b""
    raw_name, raw_link = enc(name), enc(link)
    for long, flag in ((raw_link, b"K"), (raw_name, b"L")):
        if len(long) >= 100:
            out += _block(b"././@LongLink", 0, 0, 0, len(long) + 1, 0, flag, b"", b"", b"", None)
            out += (long + b"\0").ljust(-(-(len(long) + 1) // 512) * 512, b"\0")
    return out + _block(raw_name[:100], mode, uid, gid, size, mtime, typeflag, raw_link[:100],
                        enc(uname)[:31], enc(gname)[:31], dev)


def _block(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typeflag: bytes, link: bytes,
           uname: bytes, gname: bytes, dev: tuple[int, int] | None) -> bytes:
    def octal(v: int, width: int) -> bytes:  # busybox's putOctal: the last `width` digits, a leading 0 dropped
        digits = (b"%0*o" % (width, v))[-width:]
        return (digits[1:] if digits[:1] == b"0" else digits).ljust(width, b"\0")

    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108], h[108:116], h[116:124] = octal(mode, 8), octal(uid, 8), octal(gid, 8)
    h[124:136], h[136:148] = octal(size, 12), octal(mtime, 12)
    if size > 0o777777777777:  # GNU base-256 for a size of 8 GiB or more, as busybox writes it
        h[124:136] = (size | 0x80 << 88).to_bytes(12, "big")
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[157:157 + len(link)] = link
    h[257:265] = b"ustar  \0"
    h[265:265 + len(uname)], h[297:297 + len(gname)] = uname, gname
    if dev is not None:
        h[329:337], h[337:345] = octal(dev[0], 8), octal(dev[1], 8)
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _extract(ctx: Ctx, opts: dict[str, object], names: list[str], base: str, data: BinaryIO) -> int:
    code = 0
    strip = int(opts.get("strip", 0))  # type: ignore[call-overload]
    excludes = list(opts["exclude"])  # type: ignore[call-overload]
    as_root = ctx.fs.uid == 0 and not opts.get("o")  # the emulated user: owners kept from the archive
    fs = ctx.fs
    dir_modes: list[tuple[str, int]] = []
    with open_tar(data, mode="r|", what="tar (in the emulated shell)", error=ShellError) as tf:  # a stream, headers capped (minibuild.boundedtar)
        for m in tf:
            ctx.shell.check_time()
            name = m.name
            while name.startswith("/"):
                name = name[1:]
            comps = [c for c in name.split("/") if c not in ("", ".")]
            if ".." in comps:
                ctx.err(f"skipping '{m.name}': path contains '..'")
                continue
            comps = comps[strip:]
            if not comps and not (m.isdir() and strip == 0):
                continue
            rel = "/".join(comps)
            if names and not any(rel == n.strip("/") or rel.startswith(n.strip("/") + "/") for n in names):
                continue
            if any(_matches(x, comps[-1] if comps else "") or _matches(x, rel) for x in excludes):
                continue
            if opts.get("t"):
                shown = m.name + ("/" if m.isdir() and not m.name.endswith("/") else "")
                if opts.get("v"):  # busybox: mode user/group size date time name [-> link]
                    t = time.gmtime(m.mtime)
                    shown = (f"{mode_string(m.mode | _TYPE_BITS.get(m.type, stat.S_IFREG))} "
                             f"{m.uname or m.uid}/{m.gname or m.gid} {m.size:9d} {t.tm_year:4d}-{t.tm_mon:02d}-"
                             f"{t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {shown}"
                             + (f" -> {m.linkname}" if m.linkname else ""))
                ctx.out(shown + "\n")
                continue
            if opts.get("O"):
                if m.isreg():
                    f = tf.extractfile(m)
                    if f is not None:
                        _copy_out(ctx, f)
                continue
            vdest = vnorm(rel, base) if rel else base
            parent = os.path.dirname(vdest) or "/"
            _mkdirs(ctx, parent)
            host = fs.path(vdest, "/", follow=False)
            if os.path.lexists(host):
                if m.isdir() and os.path.isdir(host) and not os.path.islink(host):
                    pass
                elif os.path.isdir(host) and not os.path.islink(host):
                    ctx.fs.check_write(host, remove=True)
                    shutil.rmtree(host)
                else:
                    ctx.fs.check_write(host, remove=True)
                    os.unlink(host)
            perm = m.mode & (0o7777 if as_root else 0o777 & ~fs.umask)
            if m.isdir():
                if not os.path.isdir(host):
                    ctx.fs.check_write(host)
                    os.mkdir(host, 0o700)
                    fs.own(host)
                dir_modes.append((vdest, m.mode))
            elif m.isreg():
                f = tf.extractfile(m)
                ctx.fs.check_write(host)
                with open(host, "wb") as out:
                    if f is not None:
                        shutil.copyfileobj(f, out, 1 << 20)
                fs.own(host)
                fs.chmod(host, perm)
            elif m.issym():
                ctx.fs.check_write(host)
                os.symlink(m.linkname, host)
                fs.own(host)
            elif m.islnk():
                target = fs.path(vnorm(m.linkname.lstrip("/"), base), "/", follow=False)
                ctx.fs.check_write(host)
                os.link(target, host, follow_symlinks=False)
            elif m.isfifo() or m.ischr() or m.isblk():
                kind: EntryType = "fifo" if m.isfifo() else "char" if m.ischr() else "block"
                fs.check_write(host)
                fs.meta.make_node(host, kind, perm, os.makedev(m.devmajor, m.devminor), fs.uid, fs.gid)
            if as_root:
                uid = (lookup_uid(ctx, m.uname) if m.uname else None)
                gid = (lookup_gid(ctx, m.gname) if m.gname else None)
                fs.chown(host, m.uid if uid is None else uid, m.gid if gid is None else gid)
                if m.mode & 0o6000 and not m.isdir() and not m.issym():
                    fs.chmod(host, perm)  # chown cleared setuid/setgid: tar sets the mode after the owner
            if not m.issym():
                ctx.fs.check_write(host)
                os.utime(host, (m.mtime, m.mtime))
    for vdest, mode in reversed(dir_modes):
        fs.chmod(fs.path(vdest, "/", follow=False), mode & (0o7777 if as_root else 0o777 & ~fs.umask))
    return code


def _mkdirs(ctx: Ctx, vdir: str) -> None:
    comps = [c for c in vdir.split("/") if c]
    for i in range(1, len(comps) + 1):
        host = ctx.fs.path("/" + "/".join(comps[:i]), "/")
        if not os.path.lexists(host):
            ctx.fs.mkdir(host)


@builtin("gzip", "gunzip", "zcat")
def gzip(ctx: Ctx, args: list[str]) -> int:
    flags = ""
    files: list[str] = []
    for a in args:
        if a.startswith("-") and len(a) > 1:
            flags += a[1:]
        else:
            files.append(a)
    decompress = "d" in flags or ctx.name in ("gunzip", "zcat")
    to_stdout = "c" in flags or ctx.name == "zcat"
    keep = "k" in flags
    if not files:
        data = ctx.stdin.read()
        try:
            if decompress:
                stdin = cast(BinaryIO, io.BufferedReader(io.BytesIO(data)))
                with _inflate(stdin, "gzip data on stdin", gzip_only=True) as plain:
                    _copy_out(ctx, plain)
            else:
                ctx.out(_compress(data, "z"))
        except DECOMPRESS_ERRORS as e:
            ctx.err(str(e))
            return 1
        return 0
    code = 0
    for f in files:
        try:
            host = ctx.path(f)
            st = ctx.fs.stat(host)
            if decompress:
                if not f.endswith(".gz") and not f.endswith(".tgz") and not to_stdout:
                    ctx.err(f"{f}: unknown suffix - ignored")
                    code = 1
                    continue
                out_name = f[:-3] if f.endswith(".gz") else f[:-4] + ".tar"
            else:
                data = ctx.fs.read_bytes(host)
                result = _compress(data, "z")
                out_name = f + ".gz"
            if to_stdout:
                if not decompress:
                    ctx.out(result)
                    continue
                with ctx.fs.open_read(host) as src, _inflate(src, f, gzip_only=True) as plain:
                    _copy_out(ctx, plain)
                continue
            out_host = ctx.path(out_name)
            if os.path.lexists(out_host) and "f" not in flags:
                ctx.err(f"{out_name}: File exists")
                code = 1
                continue
            with ctx.fs.open_write(out_host) as o:
                if not decompress:
                    o.write(result)
                else:
                    with ctx.fs.open_read(host) as src, _inflate(src, f, gzip_only=True) as plain:
                        shutil.copyfileobj(plain, o, 1 << 20)
            ctx.fs.chmod(out_host, stat.S_IMODE(st.st_mode))
            if not keep:
                ctx.fs.check_write(ctx.path(f, follow=False), remove=True)
                os.unlink(ctx.path(f, follow=False))
        except DECOMPRESS_ERRORS as e:
            ctx.err(f"{f}: {getattr(e, 'strerror', None) or e}")
            code = 1
    return code
