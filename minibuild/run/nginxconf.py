"""The part of an nginx configuration a static site needs: each server's listen ports, root, index, try_files."""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Callable

from minibuild.errors import ConfigError
from minibuild.record import record

PREFIX = "/etc/nginx"  # the official image's --prefix: relative roots and includes resolve against it
DEFAULT_ROOT = PREFIX + "/html"  # nginx's compiled-in `root html;`, for a server that names no root
MAX_INCLUDES = 64


@record
class Directive:
    """``name args... ;`` or ``name args... { children }``."""

    name: str
    args: tuple[str, ...]
    children: tuple["Directive", ...] | None = None
    where: str = ""


@record
class StaticServer:
    """One ``server {}`` block as a static site: ports, the ``location /`` root/index/try_files (server level
    values inherited as nginx does)."""

    ports: tuple[int, ...]
    root: str
    index: tuple[str, ...]
    try_files: tuple[str, ...] = ()
    where: str = ""


def tokenize(text: str, where: str) -> list[tuple[str, int]]:
    """nginx's tokens: words (quotes and backslash escapes honoured), ``{``, ``}``, ``;``; ``#`` comments dropped."""
    out: list[tuple[str, int]] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            out.append((c, line))
            i += 1
        elif c in "\"'":
            j = i + 1
            word = []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                if text[j] == "\n":
                    line += 1
                word.append(text[j])
                j += 1
            if j >= n:
                raise ConfigError(f"{where}:{line}: unexpected end of file, expecting {c}")
            out.append(("\0" + "".join(word), line))  # \0 marks a quoted word (never a brace or semicolon)
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};":
                j += 2 if text[j] == "\\" else 1
            out.append((text[i:j], line))
            i = j
    return out


def parse(text: str, where: str) -> tuple[Directive, ...]:
    """The directive tree of one file; ConfigError ``FILE:LINE: ...`` for unbalanced braces or a missing ``;``."""
    tokens = tokenize(text, where)
    pos = 0

    def block(depth: int) -> tuple[Directive, ...]:
        nonlocal pos
        items: list[Directive] = []
        words: list[str] = []
        line = 0
        while pos < len(tokens):
            tok, ln = tokens[pos]
            pos += 1
            if tok == ";":
                if not words:
                    raise ConfigError(f"{where}:{ln}: unexpected \";\"")
                items.append(Directive(name=words[0], args=tuple(words[1:]), where=f"{where}:{line}"))
                words = []
            elif tok == "{":
                if not words:
                    raise ConfigError(f"{where}:{ln}: unexpected \"{{\"")
                children = block(depth + 1)
                items.append(Directive(name=words[0], args=tuple(words[1:]), children=children, where=f"{where}:{line}"))
                words = []
            elif tok == "}":
                if depth == 0 or words:
                    raise ConfigError(f"{where}:{ln}: unexpected \"}}\"")
                return tuple(items)
            else:
                if not words:
                    line = ln
                words.append(tok.lstrip("\0"))
        if depth or words:
            raise ConfigError(f"{where}: unexpected end of file, expecting \"}}\"" if depth
                              else f"{where}:{line}: unexpected end of file, expecting \";\" or \"}}\"")
        return tuple(items)

    return block(0)


Reader = Callable[[str], str | None]  # absolute path in the image -> its text, None when it is not a file
Lister = Callable[[str], list[str]]  # directory in the image -> its entry names ([] when missing)


def load(conf: str, read: Reader, listdir: Lister) -> tuple[Directive, ...]:
    """``conf`` with every ``include`` (globs too, relative to /etc/nginx as nginx resolves them) spliced in."""
    count = 0

    def expand(items: tuple[Directive, ...]) -> tuple[Directive, ...]:
        nonlocal count
        out: list[Directive] = []
        for d in items:
            if d.name == "include" and d.children is None and d.args:
                pattern = d.args[0] if d.args[0].startswith("/") else posixpath.join(PREFIX, d.args[0])
                folder, name = posixpath.split(pattern)
                paths = [posixpath.join(folder, e) for e in sorted(listdir(folder)) if fnmatch.fnmatchcase(e, name)] \
                    if any(ch in name for ch in "*?[") else [pattern]
                for path in paths:
                    count += 1
                    if count > MAX_INCLUDES:
                        raise ConfigError(f"{d.where}: more than {MAX_INCLUDES} included files")
                    text = read(path)
                    if text is None:
                        if paths == [pattern]:
                            raise ConfigError(f"{d.where}: open() \"{path}\" failed (2: No such file or directory)")
                        continue
                    out.extend(expand(parse(text, path)))
            elif d.children is not None:
                out.append(Directive(name=d.name, args=d.args, children=expand(d.children), where=d.where))
            else:
                out.append(d)
        return tuple(out)

    text = read(conf)
    if text is None:
        raise ConfigError(f"open() \"{conf}\" failed (2: No such file or directory)")
    return expand(parse(text, conf))


def _first(items: tuple[Directive, ...], name: str) -> Directive | None:
    return next((d for d in items if d.name == name and d.children is None), None)


def _listen_port(d: Directive) -> int | None:
    """The port of ``listen 80``, ``listen 0.0.0.0:8080``, ``listen *:80 default_server``; None for IPv6 / unix."""
    arg = d.args[0] if d.args else "80"
    if arg.startswith("[") or arg.startswith("unix:"):
        return None
    port = arg.rsplit(":", 1)[-1]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{d.where}: invalid port in \"{arg}\" of the \"listen\" directive")
    return int(port)


def static_servers(tree: tuple[Directive, ...]) -> tuple[StaticServer, ...]:
    """Every ``http { server { ... } }`` as a StaticServer (``location /`` values over the server's, over http's)."""
    servers: list[StaticServer] = []
    for http in (d for d in tree if d.name == "http" and d.children is not None):
        h = http.children or ()
        for srv in (d for d in h if d.name == "server" and d.children is not None):
            s = srv.children or ()
            ports = tuple(p for p in (_listen_port(d) for d in s if d.name == "listen" and d.children is None)
                          if p is not None)
            if not any(d.name == "listen" for d in s):
                ports = (80,)
            loc = next((d.children or () for d in s if d.name == "location" and d.args in (("/",),)
                        and d.children is not None), ())
            root = _first(loc, "root") or _first(s, "root") or _first(h, "root")
            index = _first(loc, "index") or _first(s, "index") or _first(h, "index")
            tries = _first(loc, "try_files") or _first(s, "try_files")
            root_path = root.args[0] if root and root.args else DEFAULT_ROOT
            servers.append(StaticServer(ports=ports, root=posixpath.join(PREFIX, root_path),
                                        index=index.args if index else ("index.html",),
                                        try_files=tries.args if tries else (), where=srv.where))
    return tuple(servers)
