"""Archive builtins confined to the root: tar (c/x/t, z/j/J, f, C, strip-components, exclude), gzip, gunzip, zcat."""

from __future__ import annotations

import bz2
import fnmatch
import gzip as gz
import io
import lzma
import os
import stat
import tarfile

from minibuild.boundedtar import open_tar
from minibuild.errors import ImageFormatError
from minibuild.sh.builtins.base import Ctx, UsageError, builtin
from minibuild.sh.builtins.users import lookup_gid, lookup_uid
from minibuild.sh.fs import vnorm


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


def _decompress(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return gz.decompress(data)
    if data[:3] == b"BZh":
        return bz2.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data)
    return data


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
            data = ctx.read_input(str(fname)) if fname not in (None, "-") else ctx.stdin.read()
            return _extract(ctx, opts, names, base, _decompress(data))
    except (OSError, tarfile.TarError, EOFError, gz.BadGzipFile, lzma.LZMAError, ImageFormatError) as e:
        ctx.err(getattr(e, "strerror", None) or str(e))
        return 1
    ctx.err("need one of c, x, t")
    return 1


def _create(ctx: Ctx, opts: dict[str, object], names: list[str], base: str, fname: object) -> int:
    buf = io.BytesIO()
    code = 0
    excludes = list(opts["exclude"])  # type: ignore[call-overload]
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        def add(vpath: str, arc: str) -> None:
            nonlocal code
            if any(fnmatch.fnmatch(os.path.basename(arc), x) or fnmatch.fnmatch(arc, x) for x in excludes):
                return
            host = ctx.fs.path(vpath, "/", follow=bool(opts.get("h")))
            if out_host is not None and os.path.exists(host) and os.path.exists(out_host) and os.path.samefile(host, out_host):
                return
            info = tf.gettarinfo(str(host), arcname=arc)
            if info.isreg():
                with ctx.fs.open_read(host) as f:
                    tf.addfile(info, f)
            else:
                tf.addfile(info)
            if info.isdir():
                for n in sorted(os.listdir(host)):
                    add(vpath.rstrip("/") + "/" + n, arc.rstrip("/") + "/" + n)
        out_host = ctx.path(str(fname)) if fname not in (None, "-") else None
        for n in names:
            arc = n.lstrip("/") or "."
            v = vnorm(n, base)
            try:
                os.lstat(ctx.fs.path(v, "/", follow=False))
            except OSError as e:
                ctx.err(f"{n}: {e.strerror}")
                code = 1
                continue
            if n.startswith("/") and n != "/":
                arc = n.lstrip("/")
            add(v, arc)
    kind = next((k for k in "zjJ" if opts.get(k)), None)
    data = _compress(buf.getvalue(), kind)
    if fname in (None, "-"):
        ctx.out(data)
    else:
        with ctx.fs.open_write(ctx.path(str(fname))) as f:
            f.write(data)
    return code


def _extract(ctx: Ctx, opts: dict[str, object], names: list[str], base: str, data: bytes) -> int:
    code = 0
    strip = int(opts.get("strip", 0))  # type: ignore[call-overload]
    excludes = list(opts["exclude"])  # type: ignore[call-overload]
    as_root = os.geteuid() == 0 and not opts.get("o")
    fs = ctx.fs
    dir_modes: list[tuple[str, int]] = []
    with open_tar(io.BytesIO(data), mode="r:", what="tar") as tf:  # headers capped (minibuild.boundedtar)
        for m in tf:
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
            if any(fnmatch.fnmatch(comps[-1] if comps else "", x) or fnmatch.fnmatch(rel, x) for x in excludes):
                continue
            if opts.get("t"):
                ctx.out(m.name + ("/" if m.isdir() and not m.name.endswith("/") else "") + "\n")
                continue
            if opts.get("O"):
                if m.isreg():
                    f = tf.extractfile(m)
                    ctx.out(f.read() if f else b"")
                continue
            vdest = vnorm(rel, base) if rel else base
            parent = os.path.dirname(vdest) or "/"
            _mkdirs(ctx, parent)
            host = fs.path(vdest, "/", follow=False)
            if os.path.lexists(host):
                if m.isdir() and os.path.isdir(host) and not os.path.islink(host):
                    pass
                elif os.path.isdir(host) and not os.path.islink(host):
                    import shutil
                    shutil.rmtree(host)
                else:
                    os.unlink(host)
            if m.isdir():
                if not os.path.isdir(host):
                    os.mkdir(host, 0o700)
                dir_modes.append((vdest, m.mode))
            elif m.isreg():
                f = tf.extractfile(m)
                with open(host, "wb") as out:
                    out.write(f.read() if f else b"")
                os.chmod(host, m.mode & (0o7777 if as_root else 0o777 & ~fs.umask))
            elif m.issym():
                os.symlink(m.linkname, host)
            elif m.islnk():
                target = fs.path(vnorm(m.linkname.lstrip("/"), base), "/", follow=False)
                os.link(target, host, follow_symlinks=False)
            elif m.isfifo():
                os.mkfifo(host, m.mode & 0o7777)
            elif m.ischr() or m.isblk():
                if os.geteuid() == 0:
                    os.mknod(host, m.mode | (stat.S_IFCHR if m.ischr() else stat.S_IFBLK), os.makedev(m.devmajor, m.devminor))
                continue
            if as_root:
                uid = (lookup_uid(ctx, m.uname) if m.uname else None)
                gid = (lookup_gid(ctx, m.gname) if m.gname else None)
                os.lchown(host, m.uid if uid is None else uid, m.gid if gid is None else gid)
            else:
                fs.own(host)
            if not m.issym():
                os.utime(host, (m.mtime, m.mtime))
    for vdest, mode in reversed(dir_modes):
        os.chmod(fs.path(vdest, "/", follow=False), mode & (0o7777 if as_root else 0o777 & ~fs.umask))
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
            ctx.out(gz.decompress(data) if decompress else _compress(data, "z"))
        except (OSError, EOFError) as e:
            ctx.err(str(e))
            return 1
        return 0
    code = 0
    for f in files:
        try:
            host = ctx.path(f)
            st = os.stat(host)
            data = ctx.fs.read_bytes(host)
            if decompress:
                if not f.endswith(".gz") and not f.endswith(".tgz") and not to_stdout:
                    ctx.err(f"{f}: unknown suffix - ignored")
                    code = 1
                    continue
                result = gz.decompress(data)
                out_name = f[:-3] if f.endswith(".gz") else f[:-4] + ".tar"
            else:
                result = _compress(data, "z")
                out_name = f + ".gz"
            if to_stdout:
                ctx.out(result)
                continue
            out_host = ctx.path(out_name)
            if os.path.lexists(out_host) and "f" not in flags:
                ctx.err(f"{out_name}: File exists")
                code = 1
                continue
            with ctx.fs.open_write(out_host) as o:
                o.write(result)
            os.chmod(out_host, stat.S_IMODE(st.st_mode))
            if not keep:
                os.unlink(ctx.path(f, follow=False))
        except (OSError, EOFError) as e:
            ctx.err(f"{f}: {getattr(e, 'strerror', None) or e}")
            code = 1
    return code
