"""Byte streams behind the emulated shell's file descriptors (buffers, files, /dev/null)."""

from __future__ import annotations

from typing import BinaryIO


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
    """Collects output in memory."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def getvalue(self) -> bytes:
        return b"".join(self.chunks)


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
