"""An image's user databases (/etc/passwd, /etc/group) read as text inside its root, and numeric ids checked.

Every reader of these files (``COPY --chown``, ``USER``, the emulated shell's ``id``/``adduser``/``chown``/``ls``,
``$HOME`` of a RUN step) uses ``read_db``: the file is resolved inside the root, must be a regular file and at most
``confine.SMALL_FILE_LIMIT`` bytes (``confine.read_small_file``); it is parsed as text and never run (CVE-2019-14271).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from minibuild.fs.confine import read_small_file

MAX_ID = (1 << 32) - 2  # uid_t/gid_t are 32 bits and (uid_t)-1 means "unchanged" to chown(2)
_DIGITS = re.compile(r"[0-9]+\Z")


def read_db(root: Path | str, path: str, *, error: Callable[[str], Exception]) -> list[list[str]]:
    """The colon-separated rows of ``path`` (e.g. ``/etc/passwd``) inside ``root``; [] when it is missing."""
    data = read_small_file(root, path, what=path, error=error)
    if data is None:
        return []
    text = data.decode(errors="surrogateescape")
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def parse_id(text: str, *, what: str, error: Callable[[str], Exception]) -> int | None:
    """``text`` as a numeric user or group id; None when it is not all ASCII digits (a name); ``error`` when the
    number is out of range (0 to 4294967294)."""
    if not _DIGITS.match(text):
        return None
    if len(text) > 10 or int(text) > MAX_ID:
        raise error(f"{what} {text} is out of range (0 to {MAX_ID})")
    return int(text)
