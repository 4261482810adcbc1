"""Byte streams behind the emulated shell's file descriptors (buffers, files, /dev/null)."""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from minibuild.errors import ShellError
from minibuild.limits import TailBuffer


class Stream:
    """A file descriptor target: writable, readable, or both."""

    def write(self, data: bytes) -> None:  # pragma: no cover - overridden
        raise OSError(9, "Bad file descriptor")

    def read(self) -> bytes:
        return b""

    def readline(self) -> bytes:
        return b""

    def close(self) -> None:
        pass


class Buffer(Stream):
    """Collects output in memory; past ``limit`` bytes (the shell's memory limit) it raises ShellError."""

    def __init__(self, limit: int | None = None, what: str = "output held in memory",
                 message: Callable[[str], str] | None = None) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.what = what
        self.message = message

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            self.chunks.clear()
            text = self.message(self.what) if self.message else f"{self.what} exceeds {self.limit} bytes"
            raise ShellError("sh: " + text)
        self.chunks.append(data)

    def getvalue(self) -> bytes:
        return b"".join(self.chunks)


class Tail(Stream):
    """A RUN's own stdout or stderr: only the last ``limit`` bytes are kept (what a failure shows); every write is
    also passed on at once, in chunks of at most 64 KiB, to ``sink`` as ``(stream, data)`` (live progress)."""

    CHUNK = 1 << 16

    def __init__(self, limit: int, stream: int = 1, sink: Callable[[int, bytes], None] | None = None) -> None:
        self.buf = TailBuffer(limit)
        self.stream = stream
        self.sink = sink

    def write(self, data: bytes) -> None:
        self.buf.write(data)
        if self.sink is not None:
            for i in range(0, len(data), self.CHUNK):
                self.sink(self.stream, bytes(data[i:i + self.CHUNK]))

    def getvalue(self) -> bytes:
        return self.buf.getvalue()


class DirectoryInput(Stream):
    """Standard input redirected from a directory: the open succeeds (as open(2) of a directory for reading
    does), every read fails with EISDIR."""

    def read(self) -> bytes:
        raise IsADirectoryError(21, "Is a directory")

    def readline(self) -> bytes:
        raise IsADirectoryError(21, "Is a directory")


class Input(Stream):
    """Reads from bytes already in memory."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out

    def readline(self) -> bytes:
        i = self.data.find(b"\n", self.pos)
        end = len(self.data) if i < 0 else i + 1
        out = self.data[self.pos:end]
        self.pos = end
        return out


class Null(Stream):
    """/dev/null: swallows writes, reads as empty."""

    def write(self, data: bytes) -> None:
        pass


class FileOut(Stream):
    """An open file in the root, written through immediately."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def write(self, data: bytes) -> None:
        self.f.write(data)
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def dec(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")
