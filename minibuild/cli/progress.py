"""Build progress on stderr: BuildKit's plain blocks, its live terminal view, or one JSON event per line.

Every renderer is a callable taking the builder's progress events (docs/progress.md lists them) and has
``close(ok)``, called once when the build ends (``ok`` False when it failed). Steps are named the one way every
view names them: ``#N`` counts the listed steps of the whole build, ``[stage i/n]`` is BuildKit's numbering
in the stage (``minibuild.plan.steps.vertex_numbers``, ``step_label``).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any

from minibuild.executors.auto import executor_line
from minibuild.executors.runlog import Splitter, log_seconds
from minibuild.plan.steps import step_label
from minibuild.record import record
from minibuild.units import human_bytes, plural

Event = dict[str, Any]
MODES = ("auto", "plain", "tty", "json", "quiet")


def label_of(ev: Event) -> str:
    """``[build 5/6]`` of a step event."""
    return step_label(ev.get("prefix") or "", ev["vertex"], ev["vertices"])


def total_line(seconds: float, done: int, total: int, finished: bool) -> str:
    """BuildKit's header: ``[+] Building 12.3s (9/9) FINISHED`` (no FINISHED while running or after a failure)."""
    return f"[+] Building {seconds:.1f}s ({done}/{total})" + (" FINISHED" if finished else "")


class Plain:
    """BuildKit's plain style: ``#N [stage i/n] INSTR``, a RUN's output as it comes (``#N 0.351 hello``, seconds
    since the command started), then ``#N CACHED``/``DONE 1.2s``, unpacking as lines of the stage's FROM
    (``#1 extracting ...``), and a total line at the end.

    Like BuildKit, FROM is step 1 and only steps that make a filesystem state are numbered and listed; the
    stage prefix is left out of a single-stage build. Config-only steps (ENV, LABEL, CMD, ARG ...) are not
    listed (they are in the JSON progress, with ``"vertex": null``). Output lines are BuildKit's: each line
    gets the time of the read that began it; a partial last line is printed at once and continued by the next
    chunk without a new prefix, and ended by a newline before any other line."""

    def __init__(self, stream: IO[str], *, explain: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = stream
        self.explain = explain
        self.clock = clock
        self.started = clock()
        self.shown: dict[int, int] = {}  # event n -> the #N printed
        self.done = 0
        self.lines = Splitter()  # the output of the running step (one runs at a time)

    def _no(self, ev: Event) -> int:
        return self.shown.setdefault(ev["n"], len(self.shown) + 1)

    def _end_line(self) -> None:
        if self.lines.partial:
            self.out.write("\n")
            self.lines.partial = False

    def _log(self, ev: Event) -> None:
        n = self._no(ev)
        stamp = log_seconds(float(ev["seconds"]))
        for text, new, ends in self.lines.pieces(str(ev["data"])):
            self.out.write((f"#{n} {stamp} {text}" if new else text) + ("\n" if ends else ""))

    def __call__(self, ev: Event) -> None:
        kind = ev.get("type")
        if kind == "log":
            self._log(ev)
            self.out.flush()
            return
        if kind in ("unpack_start", "unpack", "image", "step_start", "step", "step_error"):
            self._end_line()
        if kind == "executor":  # what --executor auto picked for a stage (BuildKit's #0: the build's own lines)
            self._end_line()
            self.out.write(f"#0 {executor_line(ev)}\n")  # type: ignore[arg-type]
            self.out.flush()
            return
        if kind == "step_error" and ev.get("vertex") is not None:  # BuildKit's line for a failed step
            self.out.write(f"#{self._no(ev)} ERROR: {ev['message']}\n")
            self.out.flush()
            return
        if kind in ("unpack_start", "unpack") and ev.get("n") in self.shown:
            n = self.shown[ev["n"]]
            what = f"{plural(ev['layers'], 'layer')}, {human_bytes(ev['size'])}"
            self.out.write(f"#{n} extracting {what}\n" if kind == "unpack_start"
                           else f"#{n} extracting {what} {ev['seconds']:.1f}s done\n")
        elif kind == "image":
            self.out.write(total_line(self.clock() - self.started, self.done, len(self.shown), True) + "\n")
        elif kind not in ("step_start", "step") or ev.get("vertex") is None:
            return
        elif kind == "step_start":
            self.out.write(f"#{self._no(ev)} {label_of(ev)} {ev['instruction']}\n")
        else:
            n = self._no(ev)
            self.done += 1
            self.out.write(f"#{n} CACHED\n" if ev["cached"] else f"#{n} DONE {ev['seconds']:.1f}s\n")
            if self.explain and ev.get("reason"):
                self.out.write(f"#{n} {ev['reason']}\n")
        self.out.flush()

    def close(self, ok: bool) -> None:
        """End a partial output line (a failed RUN's); the total line came with the image event."""
        self._end_line()
        self.out.flush()


class Json:
    """One JSON object per event and line (keys sorted); the ``*_start`` events are left out."""

    def __init__(self, stream: IO[str]) -> None:
        self.out = stream

    def __call__(self, ev: Event) -> None:
        if str(ev.get("type", "")).endswith("_start"):
            return
        self.out.write(json.dumps(ev, sort_keys=True) + "\n")
        self.out.flush()

    def close(self, ok: bool) -> None:
        """Nothing to finish: the last event is ``image``."""


@record
class _Row:
    """One line of the live view: a listed step, or the unpacking under its stage's FROM."""

    text: str
    started: float
    seconds: float | None = None  # None while running
    cached: bool = False
    sub: bool = False  # an ``=> =>`` line (unpacking, an explanation)


TTY_LOG_LINES = 6  # lines of a running step's output the live view shows (BuildKit's termHeightMin)
_ESCAPE = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def screen_text(line: str) -> str:
    """One output line as a terminal would leave it, safe to draw inside the view: what follows the last
    carriage return, tabs expanded, escape sequences and other control characters removed."""
    if "\r" in line.rstrip("\r"):
        line = line.rstrip("\r").rsplit("\r", 1)[1]
    return _CONTROL.sub("", _ESCAPE.sub("", line).expandtabs(8))


class LogLines:
    """The last ``keep`` lines of a running step's output (a partial last line counts as one); each is kept to
    ``width`` characters (a line longer than any terminal, or one redrawn with carriage returns, stays small)."""

    def __init__(self, keep: int = TTY_LOG_LINES, width: int = 4096) -> None:
        self.done: deque[str] = deque(maxlen=keep)
        self.partial = ""
        self.keep = keep
        self.width = width

    def _short(self, line: str) -> str:
        if len(line) <= self.width:
            return line
        cut = line.rfind("\r", 0, len(line) - 1)
        return line[cut + 1:][:self.width]  # what a terminal shows: the start of the last redraw

    def feed(self, text: str) -> None:
        parts = (self.partial + text).split("\n")
        self.partial = self._short(parts.pop())
        self.done.extend(self._short(line) for line in parts[-self.keep:])

    def lines(self) -> list[str]:
        shown = list(self.done) + ([self.partial] if self.partial else [])
        return shown[-self.keep:]


class Tty:
    """BuildKit's live terminal view: a ``[+] Building 3.4s (5/9)`` header and one ``=> [stage i/n] INSTR  1.2s``
    line per step, redrawn in place (ANSI cursor movement) on every event and every ``tick`` seconds while a
    step runs; under a running RUN the last lines of its output (`` => => # line``, TTY_LOG_LINES of them, gone
    when the step is done; a failed step keeps them); the last drawing stays, with ``FINISHED`` in the header."""

    def __init__(self, stream: IO[str], *, explain: bool = False, width: int | None = None,
                 height: int | None = None, tick: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = stream
        self.explain = explain
        self.clock = clock
        self.started = clock()
        size = _terminal_size(stream)
        self.width = width or size[0]
        self.height = height or size[1]
        self.rows: dict[tuple[str, int, int], _Row] = {}  # (kind, event n of the step, k) -> row
        self.unpacks: dict[int, int] = {}  # event n of a FROM -> unpack events seen for it
        self.logs: dict[int, LogLines] = {}  # event n of a running RUN -> the end of its output
        self.steps = 0
        self.done = 0
        self.drawn = 0
        self.finished = False
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if tick > 0:
            self._ticker = threading.Thread(target=self._tick, args=(tick,), daemon=True, name="minibuild-progress")
            self._ticker.start()

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            with self.lock:
                if any(r.seconds is None for r in self.rows.values()):
                    self._draw()

    def __call__(self, ev: Event) -> None:
        kind = ev.get("type")
        now = self.clock()
        with self.lock:
            if kind == "log":
                self.logs.setdefault(ev["n"], LogLines()).feed(str(ev["data"]))
                if self._ticker is not None:
                    return  # drawn by the next tick: a chatty command does not redraw the screen per line
            elif kind == "step_start" and ev.get("vertex") is not None:
                self.rows[("step", ev["n"], 0)] = _Row(text=f"{label_of(ev)} {ev['instruction']}", started=now)
                self.steps += 1
            elif kind == "step" and ev.get("vertex") is not None:
                key = ("step", ev["n"], 0)
                row = self.rows.get(key)
                if row is None:
                    self.steps += 1
                text = row.text if row is not None else f"{label_of(ev)} {ev['instruction']}"
                self.rows[key] = _Row(text=text, started=row.started if row else now, seconds=ev["seconds"],
                                      cached=bool(ev["cached"]))
                self.done += 1
                self.logs.pop(ev["n"], None)
                if self.explain and ev.get("reason"):
                    self.rows[("why", ev["n"], 0)] = _Row(text=ev["reason"], started=now, seconds=0.0, sub=True)
            elif kind == "executor":
                self.rows[("executor", ev["n"], 0)] = _Row(text=executor_line(ev),  # type: ignore[arg-type]
                                                                  started=now, seconds=0.0, sub=True)
            elif kind in ("unpack_start", "unpack"):
                text = f"extracting {plural(ev['layers'], 'layer')}, {human_bytes(ev['size'])}"
                if kind == "unpack_start":
                    self.unpacks[ev["n"]] = self.unpacks.get(ev["n"], 0) + 1
                key = ("unpack", ev["n"], self.unpacks.get(ev["n"], 1))
                prev = self.rows.get(key)
                self.rows[key] = _Row(text=text, started=prev.started if prev else now, sub=True,
                                      seconds=ev["seconds"] if kind == "unpack" else None)
            elif kind == "image":
                self.finished = True
            else:
                return
            self._draw()

    def _line(self, row: _Row, now: float) -> str:
        head = " => => " if row.sub else (" => CACHED " if row.cached else " => ")
        secs = row.seconds if row.seconds is not None else now - row.started
        tail = f"{secs:.1f}s" if not row.sub or row.seconds is None or row.seconds else ""
        room = max(10, self.width - len(head) - len(tail) - 2)
        text = row.text if len(row.text) <= room else row.text[: room - 3] + "..."
        return head + text.ljust(room) + " " + tail.rjust(len(tail))

    def _draw(self, *, final: bool = False) -> None:
        now = self.clock()
        lines = [total_line(now - self.started, self.done, self.steps, self.finished)]
        order = sorted(self.rows, key=lambda k: (k[1], k[0] != "step", k[0] == "why", k[2]))  # a step, then its
        body = []  # a step, then its unpacking (of a FROM), its explanation, the end of its output (running)
        for k in order:
            body.append(self._line(self.rows[k], now))
            if k[0] == "step" and k[1] in self.logs:
                room = max(10, self.width - 9)
                body += [" => => # " + screen_text(text)[:room] for text in self.logs[k[1]].lines()]
        if not final and len(body) > self.height - 2:  # while running, what fits (the cursor cannot go higher)
            body = body[len(body) - (self.height - 2):]
        lines += body
        up = f"\x1b[{self.drawn}F" if self.drawn else ""
        self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines) + "\x1b[J")
        self.out.flush()
        self.drawn = len(lines)

    def close(self, ok: bool) -> None:
        """Stop the ticker and leave the full final drawing (a failed step shows ERROR)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self.lock:
            if not ok:
                for key, row in list(self.rows.items()):
                    if row.seconds is None:
                        self.rows[key] = _Row(text=row.text if row.sub else "ERROR " + row.text,
                                              started=row.started, seconds=self.clock() - row.started, sub=row.sub)
            self._draw(final=True)


def _terminal_size(stream: IO[str]) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(stream.fileno())
        return size.columns or 80, size.lines or 24
    except (OSError, ValueError, AttributeError):
        return 80, 24


def resolve_mode(mode: str, stream: IO[str]) -> str:
    """``auto`` is ``tty`` when ``stream`` is a terminal (and TERM is not ``dumb``), else ``plain``."""
    if mode != "auto":
        return mode
    try:
        is_tty = stream.isatty()
    except (AttributeError, ValueError):
        is_tty = False
    return "tty" if is_tty and os.environ.get("TERM", "") != "dumb" else "plain"


Renderer = Plain | Json | Tty


def renderer(mode: str, stream: IO[str], *, explain: bool = False, size_from: IO[str] | None = None
             ) -> Renderer | None:
    """The renderer of a resolved ``mode`` (None for ``quiet``) writing to ``stream``; ``size_from`` is the
    terminal whose size the live view uses (``stream`` may be a recorder in front of it)."""
    if mode == "json":
        return Json(stream)
    if mode == "tty":
        w, h = _terminal_size(size_from if size_from is not None else stream)
        return Tty(stream, explain=explain, width=w, height=h)
    if mode == "plain":
        return Plain(stream, explain=explain)
    return None
