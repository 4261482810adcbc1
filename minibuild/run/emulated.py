"""Run a container's process in the emulated shell, with the stand-in servers of `standins` really serving."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from minibuild.executors.executor import ensure_workdir, resolve_user
from minibuild.executors.runenv import step_env
from minibuild.limits import run_limits
from minibuild.run.spec import ContainerSpec
from minibuild.run.standins import PROGRAMS, Call, Service, standin_name
from minibuild.run.web import Listener
from minibuild.sh.interp import Shell
from minibuild.sh.streams import Stream

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)  # what docker run passes on to the container


class Signalled(BaseException):
    """A stop signal arrived (raised in the main thread by the handler `trapped_signals` installs)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Stopped(BaseException):
    """A stand-in server stopped on a signal: the whole process tree ends with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Passthrough(Stream):
    """One of minibuild's own output files (stdout/stderr) as a container's stream: written through at once,
    safe to share between the shell and the server threads."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            try:
                self.f.write(data)
                self.f.flush()
            except (BrokenPipeError, ValueError):
                pass


@contextmanager
def trapped_signals() -> Iterator[None]:
    """While inside, SIGINT/SIGTERM/SIGQUIT raise Signalled in the main thread (elsewhere: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Signalled(signum)

    old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class StandInHook:
    """The emulated shell's exec hook: a script marked as a stand-in with an entry in PROGRAMS runs as that
    program; a Service it returns is attached to the published ports mapped to its container ports."""

    def __init__(self, listeners: Mapping[int, Sequence[Listener]], note: Stream,
                 stop: threading.Event | None = None) -> None:
        self.listeners = listeners
        self.note = note
        self.stop = stop if stop is not None else threading.Event()
        self.log_lock = threading.Lock()

    def __call__(self, shell: Shell, script: str, argv: list[str], env: Mapping[str, str], in_: Stream, out: Stream,
                 err: Stream) -> int | None:
        try:
            head = shell.fs.read_bytes(shell.fs.path(script, shell.cwd), 512)
        except OSError:
            return None
        name = standin_name(head)
        program = PROGRAMS.get(name) if name else None
        if program is None or name is None:
            return None
        call = Call(name=name, script=script, argv=tuple(argv), env=dict(env), cwd=shell.cwd, fs=shell.fs, out=out,
                    err=err)
        result = program(call)
        if result is None or isinstance(result, int):
            return result
        return self.serve(result, call)

    def _say(self, text: str) -> None:
        self.note.write(f"minibuild: {text}\n".encode())

    def serve(self, service: Service, call: Call) -> int:
        """Serve until a stop signal, then end the process tree (Stopped) with the service's exit status."""
        claimed: list[Listener] = []
        for port, site in service.sites:
            published = self.listeners.get(port, ())
            if not published:
                self._say(f"{service.program} listens on container port {port}, which is not published "
                          f"(add -p HOST:{port} to reach it)")
            elif service.loopback_only:
                self._say(f"{service.program} listens on the container's own localhost only, so the published "
                          f"port is not reachable (as under Docker): make it listen on all addresses")
            else:
                for listener in published:
                    listener.claim(site, call.fs, call.out, call.err, self.log_lock)
                    claimed.append(listener)
                    self._say(f"{service.program} serves {site.root} at "
                              f"http://{listener.host}:{listener.port}/ (container port {port}); "
                              f"Ctrl-C stops it")
        try:
            while not self.stop.wait(0.2):
                pass
            signum = int(signal.SIGTERM)  # stopped through the API: as `docker stop` (SIGTERM)
        except Signalled as sig:
            signum = sig.signum
        for listener in claimed:
            listener.release()
        bye = service.goodbye(signum)
        if bye:
            call.out.write(bye.encode())
        raise Stopped(service.status(signum))


def run_emulated(root: Path, spec: ContainerSpec, listeners: Mapping[int, Sequence[Listener]], *, stdout: Stream,
                 stderr: Stream, note: Stream, stop: threading.Event | None = None, stdin: bytes = b"") -> int:
    """Run ``spec`` in the emulated shell over ``root`` (a throwaway copy); the process's exit status. A server
    runs until a stop signal (main thread) or until ``stop`` is set (then it ends as on SIGTERM)."""
    from minibuild.sh import run_argv

    ident = resolve_user(root, spec.user)
    ensure_workdir(root, spec.workdir)
    env = step_env(spec.env_dict(), ident.home)
    hook = StandInHook(listeners, note, stop)
    try:
        with trapped_signals():
            result = run_argv(spec.argv, root=root, env=env, cwd=spec.workdir, uid=ident.uid, gid=ident.gid,
                              limits=run_limits(timeout=None), stdout=stdout, stderr=stderr, exec_hook=hook,
                              stdin=stdin)
    except Stopped as stop:
        return stop.status
    except Signalled as sig:  # stopped while not serving: killed by the signal, as a process without a handler
        return 128 + sig.signum
    return result.exit_code
