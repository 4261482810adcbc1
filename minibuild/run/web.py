"""Static HTTP sites served out of a container root (http.server in threads); every read confined to the root.

A URL path is decoded and normalised lexically (above ``/`` is a 400, as nginx answers), joined to the site's
root *inside the image*, and resolved with the emulated shell's RootFS: symlinks are followed as under chroot
(absolute targets restart at the image root, ``..`` stops at it), and the file is opened O_NOFOLLOW, so neither a
hostile config (``root ../../..``) nor a symlink can make a stand-in server read a file of the host.
"""

from __future__ import annotations

import errno
import html
import mimetypes
import os
import posixpath
import socket
import socketserver
import stat
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import field
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

from minibuild.errors import ConfigError
from minibuild.record import record
from minibuild.sh.fs import RootFS
from minibuild.sh.streams import Stream

CHUNK = 64 * 1024
_BUILTIN_TYPES = mimetypes.MimeTypes(filenames=())  # Python's own table only: the same answer on every host


@record
class Site:
    """What a stand-in server serves: a directory of the image and the rules of the server it stands in for.

    ``style`` picks those rules: ``nginx`` (index files, ``try_files``, 403 for a directory without index, nginx's
    error pages and access log on stdout), ``python`` (``http.server``: index.html/index.htm, else a listing;
    its log on stderr) or ``express`` (``express.static``: ``Cannot GET /x`` pages). ``try_files`` are nginx's
    arguments (``$uri``, ``$uri/``, a fallback URI or ``=CODE``); ``body`` is one answer for every GET (a
    server that ``res.send``s a string)."""

    root: str
    style: Literal["nginx", "python", "express"] = "nginx"
    index: tuple[str, ...] = ("index.html",)
    try_files: tuple[str, ...] = ()
    server: str = ""  # the Server header ("" = none)
    types: Mapping[str, str] = field(default_factory=dict, compare=False)  # extension -> MIME type (nginx)
    default_type: str = "application/octet-stream"
    log: bool = True
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()  # sent with every answer (express's X-Powered-By)


@record
class Reply:
    """One answer: a status, a file of the root to send (host path, size, mtime), or a small body."""

    status: int
    file: str = ""
    size: int = 0
    mtime: float = 0.0
    body: bytes = b""
    content_type: str = "text/html"
    location: str = ""


def _error_page(site: Site, status: int, uri: str = "/") -> Reply:
    phrase = HTTPStatus(status).phrase if status != 405 else "Not Allowed"
    if site.style == "express":
        what = f"Cannot GET {html.escape(uri, quote=False)}" if status == 404 else phrase
        body = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n'
                f'</head>\n<body>\n<pre>{what}</pre>\n</body>\n</html>\n').encode("utf-8", "surrogateescape")
        return Reply(status=status, body=body, content_type="text/html; charset=utf-8")
    if site.style == "nginx":
        body = (f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n<center><h1>{status} {phrase}"
                f"</h1></center>\r\n<hr><center>{site.server}</center>\r\n</body>\r\n</html>\r\n").encode()
    else:
        body = b""  # BaseHTTPRequestHandler.send_error writes http.server's own page
    return Reply(status=status, body=body)


def _normalise(raw: str) -> str | None:
    """The decoded URL path with ``.``/``..`` and repeated slashes folded; None when it climbs above ``/``."""
    path = urllib.parse.unquote(raw.split("?", 1)[0].split("#", 1)[0], errors="surrogateescape")
    if not path.startswith("/") or "\0" in path:
        return None
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(comp)
    out = "/" + "/".join(parts)
    return out + "/" if path.endswith(("/", "/.", "/..")) and out != "/" else out


def _stat(fs: RootFS, vpath: str) -> tuple[str, os.stat_result] | None:
    """The host path and stat of ``vpath`` resolved in the root (symlinks followed inside it), None if absent."""
    try:
        host = fs.path(vpath)
        return str(host), os.stat(host, follow_symlinks=False)
    except OSError:
        return None


def _file(site: Site, fs: RootFS, uri: str) -> Reply | None:
    found = _stat(fs, posixpath.join(site.root, uri.lstrip("/")))
    if found is None or not stat.S_ISREG(found[1].st_mode):
        return None
    ext = uri.rsplit(".", 1)[-1].lower() if "." in uri.rsplit("/", 1)[-1] else ""
    if site.style == "nginx" and site.types:
        ctype = site.types.get(ext, site.default_type)
    else:
        guess = _BUILTIN_TYPES.guess_type(uri, strict=False)[0]
        ctype = guess or site.default_type
    return Reply(status=200, file=found[0], size=found[1].st_size, mtime=found[1].st_mtime, content_type=ctype)


def _is_dir(site: Site, fs: RootFS, uri: str) -> bool:
    found = _stat(fs, posixpath.join(site.root, uri.lstrip("/")))
    return found is not None and stat.S_ISDIR(found[1].st_mode)


def _listing(site: Site, fs: RootFS, uri: str) -> Reply:
    """http.server's directory listing (the same HTML as SimpleHTTPRequestHandler.list_directory)."""
    try:
        names = sorted(os.listdir(fs.path(posixpath.join(site.root, uri.lstrip("/")))), key=lambda a: a.lower())
    except OSError:
        return Reply(status=404)
    title = html.escape(f"Directory listing for {uri}", quote=False)
    lines = ['<!DOCTYPE HTML>', '<html lang="en">', '<head>', '<meta charset="utf-8">', f'<title>{title}</title>',
             '</head>', '<body>', f'<h1>{title}</h1>', '<hr>', '<ul>']
    for name in names:
        vpath = posixpath.join(site.root, uri.lstrip("/"), name)
        display = link = name
        try:
            st = os.lstat(fs.path(vpath, follow=False))
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            display, link = name + "/", name + "/"
        elif stat.S_ISLNK(st.st_mode):
            display = name + "@"
        lines.append('<li><a href="%s">%s</a></li>' % (urllib.parse.quote(link, errors="surrogatepass"),
                                                      html.escape(display, quote=False)))
    lines += ['</ul>', '<hr>', '</body>', '</html>\n']
    return Reply(status=200, body="\n".join(lines).encode("utf-8", "surrogateescape"),
                 content_type="text/html; charset=utf-8")


def _index(site: Site, fs: RootFS, uri: str) -> Reply:
    for name in site.index:
        found = _file(site, fs, uri + name)
        if found is not None:
            return found
    if site.style == "python":
        return _listing(site, fs, uri) if _is_dir(site, fs, uri) else Reply(status=404)
    if site.style == "express":
        return _error_page(site, 404, uri)
    return _error_page(site, 403 if _is_dir(site, fs, uri) else 404)


def _static(site: Site, fs: RootFS, uri: str) -> Reply:
    if uri.endswith("/"):
        return _index(site, fs, uri)
    found = _file(site, fs, uri)
    if found is not None:
        return found
    if _is_dir(site, fs, uri):
        return Reply(status=301, location=uri + "/", body=_error_page(site, 301).body)
    return Reply(status=404) if site.style == "python" else _error_page(site, 404, uri)


def lookup(site: Site, fs: RootFS, raw_path: str) -> Reply:
    """What ``site`` answers to a GET of ``raw_path`` (the request target as sent)."""
    if site.body is not None:
        return Reply(status=200, body=site.body, content_type="text/html; charset=utf-8")
    uri = _normalise(raw_path)
    if uri is None:
        return _error_page(site, 400) if site.style == "nginx" else Reply(status=404)
    if not site.try_files:
        return _static(site, fs, uri)
    *tries, last = site.try_files
    for t in tries:
        cand = t.replace("$uri", uri)
        if cand.endswith("/"):
            if _is_dir(site, fs, cand):
                return _index(site, fs, cand)
        elif _file(site, fs, cand) is not None:
            return _static(site, fs, cand)
    if last.startswith("=") and last[1:].isdigit():
        return _error_page(site, int(last[1:]))
    fallback = _normalise(last.replace("$uri", uri))
    return _static(site, fs, fallback) if fallback is not None else _error_page(site, 500)


class _Handler(BaseHTTPRequestHandler):
    """Answers from a Site; logs the way the stand-in's server would."""

    site: Site
    fs: RootFS
    out: Stream
    err: Stream
    lock: threading.Lock
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return self.site.server

    def send_response(self, code: int, message: str | None = None) -> None:
        if self.site.style == "python":  # http.server logs as it answers; nginx once the body is sent
            self.log_request(code)
        self.send_response_only(code, message)
        if self.site.server:
            self.send_header("Server", self.site.server)
        self.send_header("Date", self.date_time_string())

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_POST(self) -> None:
        self._send(_error_page(self.site, 405) if self.site.style == "nginx" else Reply(status=501), head=False)

    def _answer(self, *, head: bool) -> None:
        self._send(lookup(self.site, self.fs, self.path), head=head)

    def _send(self, reply: Reply, *, head: bool) -> None:
        if self.site.style == "python" and reply.status >= 400:
            self.send_error(reply.status, "File not found" if reply.status == 404 else None)
            return
        try:
            fh = self.fs.open_read(Path(reply.file)) if reply.file else None
        except OSError:
            fh, reply = None, _error_page(self.site, 403)
        length = reply.size if fh is not None else len(reply.body)
        self.send_response(reply.status)
        for name, value in self.site.headers:
            self.send_header(name, value)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(length))
        if fh is not None:
            self.send_header("Last-Modified", formatdate(reply.mtime, usegmt=True))
        if reply.location:
            self.send_header("Location", reply.location)
        self.end_headers()
        self._sent = length
        try:
            if head:
                return
            if fh is None:
                self.wfile.write(reply.body)
                return
            left = length
            while left > 0:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
        finally:
            if fh is not None:
                fh.close()
            if self.site.style != "python":
                self.log_request(reply.status)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if not self.site.log:
            return
        if self.site.style == "nginx":  # nginx's "combined" format, to the container's stdout (access.log)
            when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
            agent = self.headers.get("User-Agent", "-") if self.headers else "-"
            ref = self.headers.get("Referer", "-") if self.headers else "-"
            line = f'{self.client_address[0]} - - [{when}] "{self.requestline}" {code} ' \
                   f'{getattr(self, "_sent", 0)} "{ref}" "{agent}" "-"\n'
            stream = self.out
        else:
            line = f'{self.address_string()} - - [{self.log_date_time_string()}] "{self.requestline}" {code} {size}\n'
            stream = self.err
        with self.lock:
            stream.write(line.encode("utf-8", "replace"))

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        if self.site.style == "python" and self.site.log:
            with self.lock:
                self.err.write(f"{self.address_string()} - - [{self.log_date_time_string()}] {format % args}\n"
                               .encode("utf-8", "replace"))


class _Closed(socketserver.BaseRequestHandler):
    """A published port nothing in the container listens on: the connection is closed at once (docker-proxy)."""

    def handle(self) -> None:
        pass


class Listener(ThreadingHTTPServer):
    """A published host port, bound before the program starts (as Docker binds it). Until a stand-in server
    claims the container port it maps to, a connection is closed unanswered, as Docker's proxy does."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__((host, port), _Closed)
        except OSError as exc:
            why = "port is already allocated" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ConfigError(f"cannot publish {host}:{port}: {why}") from None
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                                       name=f"minibuild-run-{self.port}")
        self.thread.start()

    def claim(self, site: Site, fs: RootFS, out: Stream, err: Stream, lock: threading.Lock) -> None:
        """Answer from now on with ``site``."""
        self.RequestHandlerClass = type(
            "SiteHandler", (_Handler,), {"site": site, "fs": fs, "out": out, "err": err, "lock": lock,
                                         "protocol_version": "HTTP/1.0" if site.style == "python" else "HTTP/1.1"})

    def release(self) -> None:
        """Back to closing connections (the server stopped)."""
        self.RequestHandlerClass = _Closed

    def stop(self) -> None:
        self.shutdown()
        self.thread.join(timeout=5)
        self.server_close()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def host(self) -> str:
        host = str(self.server_address[0])
        return f"[{host}]" if ":" in host else host
