"""A hostile registry: a real HTTP server on 127.0.0.1 (http.server in a thread) serving whatever a test scripts.

It is the attacker: bodies may be endless, trickled a byte at a time, larger than their descriptors, or lie
about diff_ids.  Routes map a path (query stripped) to a function returning (status, headers, body chunks).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from minibuild.digest import Digest

Reply = tuple[int, dict[str, str], Iterable[bytes]]
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def endless(chunk: bytes = b"\0" * 65536) -> Iterator[bytes]:
    """Zeros for ever (until the client hangs up)."""
    while True:
        yield chunk


def trickle(data: bytes = b"\0" * (1 << 20), every: float = 0.2) -> Iterator[bytes]:
    """``data`` one byte per ``every`` seconds: each read gets something, the whole never arrives in time."""
    for i in range(len(data)):
        yield data[i:i + 1]
        time.sleep(every)


class HostileRegistry:
    """``routes[path] = lambda: (status, headers, chunks)``; ``host`` is ``127.0.0.1:PORT`` (plain HTTP)."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[], Reply]] = {"/v2/": lambda: (200, {}, [b"{}"])}
        self.requests: list[tuple[str, str]] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                registry.requests.append((self.command, path))
                route = registry.routes.get(path)
                status, headers, body = route() if route else (404, {}, [b'{"errors":[{"code":"NOT_FOUND"}]}'])
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command == "HEAD":
                    return
                try:
                    for chunk in body:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def blob(self, data: bytes, *, content_length: bool = True) -> Digest:
        """Serve ``data`` as a blob; returns its digest."""
        digest = Digest.of_bytes(data)
        headers = {"Content-Length": str(len(data))} if content_length else {}
        self.routes[f"/v2/img/blobs/{digest}"] = lambda: (200, headers, [data])
        return digest

    def manifest(self, doc: dict[str, object], tag: str = "latest") -> bytes:
        """Serve ``doc`` as the manifest of ``img:tag`` (and by digest)."""
        data = json.dumps(doc).encode()
        reply = (200, {"Content-Type": str(doc.get("mediaType", MANIFEST_TYPE)), "Content-Length": str(len(data)),
                       "Docker-Content-Digest": Digest.of_bytes(data).value}, [data])
        self.routes[f"/v2/img/manifests/{tag}"] = lambda: reply
        self.routes[f"/v2/img/manifests/{Digest.of_bytes(data)}"] = lambda: reply
        return data

    def image(self, config: bytes, layers: list[tuple[bytes, str]], *, sizes: dict[int, int] | None = None,
              config_size: int | None = None) -> None:
        """Serve an image: ``config`` and ``layers`` (blob, media type) as blobs, and its manifest under
        ``latest``; ``sizes``/``config_size`` override what the descriptors claim."""
        cfg = self.blob(config)
        descs = []
        for i, (blob, media) in enumerate(layers):
            d = self.blob(blob)
            descs.append({"mediaType": media, "digest": d.value, "size": (sizes or {}).get(i, len(blob))})
        self.manifest({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.value,
                                  "size": len(config) if config_size is None else config_size},
                       "layers": descs})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def config_for(diff_ids: list[Digest]) -> bytes:
    """An image config whose rootfs lists ``diff_ids`` (true or not)."""
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                       "rootfs": {"type": "layers", "diff_ids": [d.value for d in diff_ids]},
                       "history": [{"created_by": "hostile"} for _ in diff_ids]}).encode()
