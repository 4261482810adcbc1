"""Run a real program (an ELF binary) with the chroot executor in the host's network namespace."""

from __future__ import annotations

import errno
import socket
import socketserver
import threading
from pathlib import Path

from minibuild.executors.chroot import ChrootExecutor
from minibuild.executors.executor import RunRequest
from minibuild.errors import ConfigError
from minibuild.limits import run_limits
from minibuild.run.spec import ContainerSpec, Publish
from minibuild.sh.streams import Stream


class _Pipe(socketserver.BaseRequestHandler):
    target: tuple[str, int]

    def handle(self) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            return  # nothing listens in the container (yet): closed unanswered, as docker-proxy does
        upstream.settimeout(None)

        def copy(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        back = threading.Thread(target=copy, args=(upstream, self.request), daemon=True)
        back.start()
        copy(self.request, upstream)
        back.join()
        upstream.close()


class Proxy(socketserver.ThreadingTCPServer):
    """A userland proxy (Docker's docker-proxy) from a published host port to the program's port on loopback."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, publish: Publish) -> None:
        handler = type("Pipe", (_Pipe,), {"target": ("127.0.0.1", publish.container_port)})
        try:
            super().__init__((publish.host_ip, publish.host_port), handler)
        except OSError as exc:
            why = "port is already allocated" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ConfigError(f"cannot publish {publish.host_ip}:{publish.host_port}: {why}") from None
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.thread.join(timeout=5)
        self.server_close()


def run_chroot(root: Path, spec: ContainerSpec, *, note: Stream, interactive: bool = False) -> int:
    """Run ``spec`` in ``root`` with the chroot executor, sharing the host's network (its loopback): a program
    listening on port P is on the host's port P; ``-p H:P`` with H != P adds a proxy from H to P. Output goes
    straight to minibuild's own stdout/stderr; stop signals are passed on to the program."""
    proxies: list[Proxy] = []
    try:
        for p in spec.publish:
            if p.host_port != p.container_port:
                proxies.append(Proxy(p))
        for p in spec.publish:
            via = "the program's own port" if p.host_port == p.container_port else "a loopback proxy"
            note.write(f"minibuild: -p {p.host_ip}:{p.host_port}:{p.container_port}: a real program runs in the "
                       f"host's network namespace (chroot executor), so its port {p.container_port} is the host's; "
                       f"{p.host_ip}:{p.host_port} is {via}\n".encode())
        req = RunRequest(root=root, argv=spec.argv, env=spec.env, workdir=spec.workdir, user=spec.user, network=True,
                         passthrough=True, interactive=interactive, limits=run_limits(timeout=None))
        return ChrootExecutor().run(req).exit_code
    finally:
        for proxy in proxies:
            proxy.stop()


__all__ = ["Proxy", "run_chroot"]
