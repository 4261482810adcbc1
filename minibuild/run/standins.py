"""The registry of stand-in programs `minibuild run` runs for real: a server a stand-in base only describes.

A stand-in base's programs are sh scripts whose first comment says ``# NAME: minibuild teaching stand-in``.
In a build they print what they would do and exit. Under `minibuild run` the emulated shell asks this registry
first: ``PROGRAMS[NAME](call)`` returns a Service (the program now serves, e.g. nginx from its configuration),
an exit status (it answered itself, e.g. a configuration error), or None (run the script as in a build: a
stand-in that only prints, such as the Go stand-in's /app, needs no entry). A new stand-in base (Java, .NET)
plugs in with ``@program("java")`` on a function of the same shape.
"""

from __future__ import annotations

import os
import posixpath
import re
import signal
from collections.abc import Callable, Mapping
from dataclasses import field

from minibuild.errors import ConfigError
from minibuild.record import record
from minibuild.run import nginxconf
from minibuild.run.web import Site
from minibuild.sh.fs import RootFS
from minibuild.sh.streams import Stream

MARKER = re.compile(rb"^# ([A-Za-z0-9_.+-]+): minibuild teaching stand-in", re.MULTILINE)


@record
class Call:
    """A stand-in program about to run: its name, script, argv, environment and working directory, the root."""

    name: str
    script: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(compare=False)
    cwd: str
    fs: RootFS = field(compare=False)
    out: Stream = field(compare=False)
    err: Stream = field(compare=False)

    def read(self, path: str) -> str | None:
        """A file of the root as text (path relative to cwd; symlinks followed inside the root), None if absent."""
        try:
            return self.fs.read_bytes(self.fs.path(path, self.cwd)).decode("utf-8", "replace")
        except OSError:
            return None

    def listdir(self, path: str) -> list[str]:
        """The entry names of a directory of the root ([] when it is missing or not a directory)."""
        try:
            return os.listdir(self.fs.path(path, self.cwd))
        except OSError:
            return []

    def say(self, text: str, *, err: bool = False) -> None:
        (self.err if err else self.out).write(text.encode("utf-8", "surrogateescape"))


@record
class Service:
    """What a stand-in server does once started: sites by container port, where it listens, how it ends."""

    program: str
    sites: tuple[tuple[int, Site], ...]
    loopback_only: bool = False  # listens on the container's own localhost (unreachable through -p, as in Docker)
    exits: tuple[tuple[int, int], ...] = ()  # signal -> exit status (default 128 + signal, killed)
    farewell: tuple[tuple[int, str], ...] = ()  # signal -> what it prints to stdout as it stops

    def status(self, signum: int) -> int:
        return dict(self.exits).get(signum, 128 + signum)

    def goodbye(self, signum: int) -> str:
        return dict(self.farewell).get(signum, "")


Program = Callable[[Call], "Service | int | None"]
PROGRAMS: dict[str, Program] = {}


def program(*names: str) -> Callable[[Program], Program]:
    """Register a stand-in program under the NAMEs of its marker line."""
    def deco(fn: Program) -> Program:
        for name in names:
            PROGRAMS[name] = fn
        return fn
    return deco


def standin_name(head: bytes) -> str | None:
    """The NAME of a script's ``# NAME: minibuild teaching stand-in`` line (in its first 512 bytes), or None."""
    m = MARKER.search(head[:512])
    return m.group(1).decode() if m else None


# --------------------------------------------------------------------------- nginx

def _nginx_types(tree: tuple[nginxconf.Directive, ...]) -> tuple[dict[str, str], str]:
    types: dict[str, str] = {}
    default = "text/plain"  # nginx's compiled-in default_type
    for http in (d for d in tree if d.name == "http" and d.children is not None):
        for d in http.children or ():
            if d.name == "types" and d.children is not None:
                for t in d.children:
                    for ext in t.args:
                        types.setdefault(ext.lower(), t.name)
            elif d.name == "default_type" and d.args:
                default = d.args[0]
    return types, default


@program("nginx")
def nginx(call: Call) -> Service | int | None:
    """``nginx [-c FILE] [-g DIRECTIVES]``: serve every server block's root on its listen ports (the other
    options, -v -t -s ..., are the stand-in script's)."""
    conf = nginxconf.PREFIX + "/nginx.conf"
    args = list(call.argv[1:])
    while args:
        a = args.pop(0)
        if a == "-c" and args:
            conf = args.pop(0)
        elif a in ("-g", "-p", "-e") and args:
            args.pop(0)
        elif a in ("-q",):
            continue
        else:
            return None
    try:
        tree = nginxconf.load(posixpath.join(nginxconf.PREFIX, conf), call.read, call.listdir)
        servers = nginxconf.static_servers(tree)
    except ConfigError as exc:
        call.say(f"nginx: [emerg] {exc}\n", err=True)
        return 1
    version = call.env.get("NGINX_VERSION", "1.27.2")
    types, default_type = _nginx_types(tree)
    sites: dict[int, Site] = {}
    for srv in servers:
        for port in srv.ports:  # the first server of a port is its default server
            sites.setdefault(port, Site(root=srv.root, style="nginx", index=srv.index, try_files=srv.try_files,
                                        server=f"nginx/{version}", types=types, default_type=default_type))
    if not sites:
        call.say("nginx: [emerg] no \"server\" block listens on an IPv4 port (minibuild stand-in)\n", err=True)
        return 1
    stop = ((signal.SIGINT, 0), (signal.SIGTERM, 0), (signal.SIGQUIT, 0))  # fast / graceful shutdown: status 0
    return Service(program="nginx", sites=tuple(sorted(sites.items())), exits=stop)


# --------------------------------------------------------------------------- python -m http.server

@program("python3", "python")
def python(call: Call) -> Service | int | None:
    """``python -m http.server [PORT] [-b ADDR] [-d DIR]``: serve DIR (default the working directory)."""
    args = list(call.argv[1:])
    while args and args[0].startswith("-") and args[0] != "-m" and len(args[0]) == 2 and args[0] not in ("-c",):
        args.pop(0)  # -u, -B, -O ...
    if args[:2] != ["-m", "http.server"]:
        return None
    args = args[2:]
    port, bind, directory = 8000, "", call.cwd
    while args:
        a = args.pop(0)
        if a in ("-b", "--bind") and args:
            bind = args.pop(0)
        elif a.startswith("--bind="):
            bind = a.split("=", 1)[1]
        elif a in ("-d", "--directory") and args:
            directory = posixpath.join(call.cwd, args.pop(0))
        elif a.startswith("--directory="):
            directory = posixpath.join(call.cwd, a.split("=", 1)[1])
        elif a.isdigit():
            port = int(a)
        elif a in ("-p", "--protocol") and args:
            args.pop(0)
        else:
            call.say(f"usage: server.py [-h] [--cgi] [-b ADDRESS] [-d DIRECTORY] [-p VERSION] [port]\n"
                     f"server.py: error: argument port: invalid int value: '{a}'\n", err=True)
            return 2
    host = bind or "0.0.0.0"
    url_host = f"[{host}]" if ":" in host else host
    call.say(f"Serving HTTP on {host} port {port} (http://{url_host}:{port}/) ...\n")
    version = call.env.get("PYTHON_VERSION", "3.12.7")
    site = Site(root=directory, style="python", index=("index.html", "index.htm"),
                server=f"SimpleHTTP/0.6 Python/{version}")
    local = bind in ("127.0.0.1", "localhost", "::1")
    return Service(program="python -m http.server", sites=((port, site),), loopback_only=local,
                   exits=((signal.SIGINT, 0),), farewell=((signal.SIGINT, "\nKeyboard interrupt received, exiting.\n"),))


# --------------------------------------------------------------------------- vite preview

@program("vite")
def vite(call: Call) -> Service | int | None:
    """``vite preview [--port N] [--outDir D] [--host [H]]``: serve the build output as a single-page app
    (unknown paths answer index.html). Without ``--host`` vite listens on localhost only, as the real one does."""
    args = list(call.argv[1:])
    if "preview" not in args:
        return None
    port, outdir, host = 4173, "dist", ""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--port" and i + 1 < len(args):
            i += 1
            port = int(args[i]) if args[i].isdigit() else port
        elif a.startswith("--port="):
            port = int(a.split("=", 1)[1]) if a.split("=", 1)[1].isdigit() else port
        elif a == "--outDir" and i + 1 < len(args):
            i += 1
            outdir = args[i]
        elif a.startswith("--outDir="):
            outdir = a.split("=", 1)[1]
        elif a == "--host":
            host = "0.0.0.0"
            if i + 1 < len(args) and not args[i + 1].startswith("-"):
                i += 1
                host = args[i]
        elif a.startswith("--host="):
            host = a.split("=", 1)[1]
        i += 1
    root = posixpath.join(call.cwd, outdir)
    if call.listdir(root) == []:
        call.say(f"error: The directory \"{outdir}\" does not exist. Did you build your project?\n", err=True)
        return 1
    call.say(f"  \u279c  Local:   http://localhost:{port}/\n")
    call.say("  \u279c  Network: use --host to expose\n" if not host else f"  \u279c  Network: http://{host}:{port}/\n")
    site = Site(root=root, style="nginx", index=("index.html",), try_files=("$uri", "$uri/", "/index.html"),
                log=False)
    return Service(program="vite preview", sites=((port, site),), loopback_only=not host or host == "localhost")


# --------------------------------------------------------------------------- node server.js

_PORT = re.compile(r"\b(?:PORT|port)\s*=\s*(?:process\.env\.PORT\s*(?:\|\||\?\?)\s*)?(\d{1,5})\b")
_LISTEN = re.compile(r"\.listen\(\s*(?:process\.env\.PORT\s*(?:\|\||\?\?)\s*)?(\d{1,5})?")
_STATIC = re.compile(r"""express\.static\(\s*(?:path\.(?:join|resolve)\(\s*__dirname\s*,\s*)?['"]([^'"]+)['"]""")
_SEND = re.compile(r"""res\.(?:send|end)\(\s*(['"])((?:(?!\1).)*)\1""")
_LOG = re.compile(r"""console\.log\(\s*(['"])((?:(?!\1).)*)\1\s*\)""")


@program("node")
def node(call: Call) -> Service | int | None:
    """``node FILE`` where FILE calls ``.listen(...)``: serve its ``express.static(DIR)`` (or the string it
    ``res.send``s) on its port (``process.env.PORT || N`` honours PORT); other scripts print as in a build."""
    args = [a for a in call.argv[1:] if not a.startswith("-")]
    if not args or len(args) != len(call.argv) - 1:
        return None
    script = args[0] if call.read(args[0]) is not None or call.read(args[0] + ".js") is None else args[0] + ".js"
    text = call.read(script)
    if text is None:
        return None
    listen = _LISTEN.search(text)
    if listen is None:
        return None
    guess = listen.group(1) or (m.group(1) if (m := _PORT.search(text)) else "3000")
    port = int(call.env["PORT"]) if "process.env.PORT" in text and call.env.get("PORT", "").isdigit() else int(guess)
    for m in _LOG.finditer(text):
        call.say(m.group(2) + "\n")
    base = posixpath.dirname(posixpath.join(call.cwd, script))
    static = _STATIC.search(text)
    send = _SEND.search(text)
    headers = (("X-Powered-By", "Express"),) if "express" in text else ()
    if static is not None:
        site = Site(root=posixpath.join(base, static.group(1)), style="express", index=("index.html",), log=False,
                    headers=headers)
    else:
        body = (send.group(2) if send else "").encode("utf-8", "surrogateescape")
        site = Site(root=base, style="express", body=body, log=False, headers=headers)
    return Service(program=f"node {script}", sites=((port, site),))
