"""A RUN's output as it is produced: the interleaved bounded tail a failure shows, BuildKit's log clipping, and the
typed ``log`` progress event (docs/progress.md)."""

from __future__ import annotations

import codecs
from collections import deque
from collections.abc import Callable
from typing import Literal, TypedDict

STDOUT: Literal[1] = 1
STDERR: Literal[2] = 2
FAILURE_LINES = 10  # lines of output a failed RUN's error shows (BuildKit's error box keeps 10)

OutputSink = Callable[[int, bytes], None]  # (stream 1 = stdout | 2 = stderr, bytes) as the command writes them


class LogEvent(TypedDict):
    """The ``log`` progress event: one chunk of a running RUN's output, in the order it was produced."""

    type: Literal["log"]
    n: int  # the build-wide step number of the RUN (as its ``step`` event)
    stage: str
    vertex: int | None
    vertices: int
    prefix: str
    stream: int  # 1 = stdout, 2 = stderr
    data: str  # UTF-8 decoded across chunk boundaries (invalid bytes as U+FFFD)
    seconds: float  # since the command started, when the chunk was read


class InterleavedTail:
    """The last ``limit`` bytes of a command's stdout and stderr together, as (stream, bytes) chunks in the order
    they were produced: what a failure shows. Memory stays within ``limit`` whatever passes through."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 0)
        self._chunks: deque[tuple[int, bytes]] = deque()
        self._size = 0
        self.total = 0

    def write(self, stream: int, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        if len(data) >= self.limit:
            self._chunks.clear()
            self._size = 0
            data = data[len(data) - self.limit:] if self.limit else b""
            if not data:
                return
        self._chunks.append((stream, bytes(data)))
        self._size += len(data)
        while self._size > self.limit:
            stream0, first = self._chunks[0]
            extra = self._size - self.limit
            if len(first) <= extra:
                self._chunks.popleft()
                self._size -= len(first)
            else:
                self._chunks[0] = (stream0, first[extra:])
                self._size -= extra

    @property
    def size(self) -> int:
        return self._size

    def chunks(self) -> tuple[tuple[int, bytes], ...]:
        return tuple(self._chunks)


def tail_lines(chunks: tuple[tuple[int, bytes], ...], count: int = FAILURE_LINES) -> list[str]:
    """The last ``count`` non-empty-trailing lines of interleaved output chunks, decoded (invalid bytes U+FFFD)."""
    text = b"".join(data for _, data in chunks).decode(errors="replace").strip()
    return text.splitlines()[-count:] if text else []


def format_limit(limit: int) -> str:
    """A byte count as BuildKit's clip message writes it: ``2MiB``, ``512KiB``, ``100B``."""
    value, unit = float(limit), "B"
    for name in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, name
    return f"{value:g}{unit}"


class LogStream:
    """What progress shows of one stream of one RUN: the first ``limit`` bytes (None = all), then BuildKit's
    ``[output clipped, log limit 2MiB reached]`` once; decoded incrementally so a character split across reads
    stays whole."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.size = 0
        self.clipped = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        """The text of ``data`` progress shows ("" once clipped)."""
        if self.clipped:
            return ""
        keep = data
        if self.limit is not None and self.size + len(data) > self.limit:
            keep = data[:max(self.limit - self.size, 0)]
        self.size += len(keep)
        text = self._decoder.decode(keep)
        if len(keep) < len(data):
            self.clipped = True
            text += self._decoder.decode(b"", final=True)
            text += f"\n[output clipped, log limit {format_limit(self.limit or 0)} reached]\n"
        return text

    def flush(self) -> str:
        """What is left of a character cut short at the end of the output."""
        return "" if self.clipped else self._decoder.decode(b"", final=True)


class Splitter:
    """Cuts shown output into BuildKit's log lines: each piece is (text, starts a new line, ends its line)."""

    def __init__(self) -> None:
        self.partial = False

    def pieces(self, text: str) -> list[tuple[str, bool, bool]]:
        if not text:
            return []
        parts = text.split("\n")
        complete = parts[-1] == ""
        if complete:
            parts.pop()
        out = []
        for i, part in enumerate(parts):
            new = not (i == 0 and self.partial)
            ends = i < len(parts) - 1 or complete
            out.append((part, new, ends))
        self.partial = not complete
        return out


def log_seconds(seconds: float) -> str:
    """BuildKit's log timestamp: 3 decimals below 10 s, 2 below 100 s, else 1."""
    prec = 3 if seconds < 10 else 2 if seconds < 100 else 1
    return f"{seconds:.{prec}f}"


class LogEmitter:
    """An OutputSink that turns a running RUN's output into ``log`` events: ``base`` names the step, each stream
    is clipped at ``limit`` bytes (LogStream), ``seconds`` count from when the emitter was made (the command's
    start). ``close()`` emits what is left of a character cut short at the end."""

    def __init__(self, emit: Callable[[LogEvent], None], *, n: int, stage: str, vertex: int | None, vertices: int,
                 prefix: str, limit: int | None, clock: Callable[[], float]) -> None:
        self.emit = emit
        self.clock = clock
        self.started = clock()
        self.where = (n, stage, vertex, vertices, prefix)
        self.streams = {STDOUT: LogStream(limit), STDERR: LogStream(limit)}

    def _send(self, stream: int, text: str) -> None:
        if not text:
            return
        n, stage, vertex, vertices, prefix = self.where
        self.emit(LogEvent(type="log", n=n, stage=stage, vertex=vertex, vertices=vertices, prefix=prefix,
                           stream=stream, data=text, seconds=round(self.clock() - self.started, 3)))

    def __call__(self, stream: int, data: bytes) -> None:
        self._send(stream, self.streams[STDERR if stream == STDERR else STDOUT].feed(data))

    def close(self) -> None:
        for stream, log in self.streams.items():
            self._send(stream, log.flush())
