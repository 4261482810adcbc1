#!/usr/bin/env python3
"""Regenerate docs/tutorial.md and docs/cache-keys.md by running every ``$ command`` of their templates.

Usage (from anywhere inside the checkout):

    python docs/tutorial/generate.py            # rewrite the generated documents
    python docs/tutorial/generate.py --check    # regenerate in memory; exit 1 with a diff if a document drifted
    python docs/tutorial/generate.py --only tutorial.md --timings

Template syntax (``docs/tutorial/*.md.in``): plain Markdown, except fenced blocks whose info string contains the
word ``run``. Each line ``$ COMMAND`` in such a block is executed and its output (stdout and stderr, merged in
the order written) is pasted under it. A command ending in a here-document (``<<'EOF'``) continues up to the
terminator line. Info-string words:

* ``run``: execute the block; the first word stays the fence language (``console``, ``mermaid``, ...);
* ``output-only``: paste only the outputs, not the ``$`` lines (for a ``mermaid`` block GitHub renders);
* ``allow-fail``: a non-zero exit is expected (the error message is part of the lesson); otherwise a failing
  command stops the generation.

Every document is generated in its own fresh workspace (a copy of the git-tracked files under ``examples/``,
with normalised modes and mtimes) and its own fresh, empty store. ``cd DIR`` and ``export NAME=VALUE`` are
carried from one command to the next; ``export MINIBUILD_HOME=...`` always points at the fresh store. Fixture
padding is always full size (``MINIBUILD_FIXTURE_PADDING=1``) so that sizes are the real lesson.

What is truly non-deterministic is normalised: step timings (``DONE 1.2s`` -> ``DONE <t>``, a RUN output line's
``#4 0.346`` -> ``#4 <t>``, JSON
``"seconds": 0.41`` -> ``"seconds": "<t>"``), the store path (-> ``$MINIBUILD_HOME``) and the workspace path
(-> ``$WORK``). Everything else (digests, sizes, keys) is pasted as printed: minibuild builds are reproducible
with a fixed ``SOURCE_DATE_EPOCH``, so a change in them is a real change that must be looked at.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# (template, generated document), both relative to the repository root
DOCUMENTS: tuple[tuple[str, str], ...] = (
    ("docs/tutorial/tutorial.md.in", "docs/tutorial.md"),
    ("docs/tutorial/cache-keys.md.in", "docs/cache-keys.md"),
)
FIXED_MTIME = 1_700_000_000  # mtime given to every workspace file (minibuild ignores mtimes; this is tidiness)
COMMAND_TIMEOUT = 900  # seconds; a command that takes longer is a bug worth stopping for
REGEN_HINT = "python docs/tutorial/generate.py"


class GenerationError(Exception):
    """A template that cannot be rendered: a bad block, a failing command, a path outside the workspace."""


# ---------------------------------------------------------------------------------------------- template


@dataclass(frozen=True, slots=True, kw_only=True)
class Text:
    """Markdown copied as is."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunBlock:
    """A fenced block whose commands are executed."""

    lang: str
    commands: tuple[str, ...]
    output_only: bool
    allow_fail: bool
    line: int  # 1-based line of the opening fence in the template


_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1\s*$")


def parse_template(text: str) -> tuple[Text | RunBlock, ...]:
    """Split a template into plain Markdown and run blocks."""
    out: list[Text | RunBlock] = []
    lines = text.splitlines(keepends=True)
    buf: list[str] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i].rstrip("\n"))
        words = m.group(2).split() if m else []
        if not m or "run" not in words:
            if m:  # an ordinary fenced block: copy it whole, so `$` lines inside it are never run
                fence = m.group(1)
                buf.append(lines[i])
                i += 1
                while i < len(lines) and not lines[i].rstrip("\n").startswith(fence):
                    buf.append(lines[i])
                    i += 1
                if i < len(lines):
                    buf.append(lines[i])
                i += 1
                continue
            buf.append(lines[i])
            i += 1
            continue
        if buf:
            out.append(Text(text="".join(buf)))
            buf = []
        fence, start = m.group(1), i + 1
        unknown = set(words) - {"run", "output-only", "allow-fail"} - {words[0]}
        if unknown or words[0] in ("run", "output-only", "allow-fail"):
            raise GenerationError(f"template line {start}: fence info {m.group(2).strip()!r}: the first word must "
                                  f"be the language, then run [output-only] [allow-fail]")
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].rstrip("\n") != fence:
            body.append(lines[i].rstrip("\n"))
            i += 1
        if i == len(lines):
            raise GenerationError(f"template line {start}: run block is not closed")
        i += 1
        commands: list[str] = []
        j = 0
        while j < len(body):
            line = body[j]
            if not line.strip():
                j += 1
                continue
            if not line.startswith("$ "):
                raise GenerationError(f"template line {start + 1 + j}: a run block holds only `$ command` lines, "
                                      f"got {line!r} (outputs are generated)")
            cmd = [line[2:]]
            hd = _HEREDOC.search(line)
            if hd:
                end = hd.group(2)
                j += 1
                while j < len(body) and body[j] != end:
                    cmd.append(body[j])
                    j += 1
                if j == len(body):
                    raise GenerationError(f"template line {start + 1 + j}: here-document {end} is not closed")
                cmd.append(end)
            commands.append("\n".join(cmd))
            j += 1
        if not commands:
            raise GenerationError(f"template line {start}: run block without commands")
        out.append(RunBlock(lang=words[0], commands=tuple(commands), output_only="output-only" in words,
                            allow_fail="allow-fail" in words, line=start))
    if buf:
        out.append(Text(text="".join(buf)))
    return tuple(out)


# ---------------------------------------------------------------------------------------------- session


def _example_files(repo: Path) -> list[str]:
    """The files under examples/ that a fresh checkout has (git-tracked), else every file but caches."""
    try:
        res = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--", "examples"], capture_output=True,
                             check=True)
        files = [f for f in res.stdout.decode().split("\0") if f]
        if files:
            return [f for f in files if (repo / f).exists() or (repo / f).is_symlink()]
    except (OSError, subprocess.CalledProcessError):
        pass
    out = []
    for dirpath, dirnames, filenames in os.walk(repo / "examples"):
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "node_modules", "dist"))
        for name in sorted(filenames):
            if not name.endswith((".pyc", ".tar")):
                out.append(os.path.relpath(os.path.join(dirpath, name), repo))
    return out


def make_workspace(repo: Path, dest: Path) -> None:
    """Copy the examples into ``dest/examples`` with git's view of modes (0644 or 0755) and fixed mtimes."""
    for rel in _example_files(repo):
        src, dst = repo / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
            continue
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o755 if os.stat(src).st_mode & 0o111 else 0o644)
    for dirpath, dirnames, filenames in os.walk(dest, topdown=False):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.utime(p, (FIXED_MTIME, FIXED_MTIME))
        os.chmod(dirpath, 0o755)
        os.utime(dirpath, (FIXED_MTIME, FIXED_MTIME))


def _umask022() -> None:
    os.umask(0o022)


class Session:
    """A fresh workspace and store, the current directory and the exported variables of one document."""

    def __init__(self, root: Path, repo: Path) -> None:
        self.root = root
        self.work = root / "work"
        self.store = root / "store"
        self.work.mkdir()
        make_workspace(repo, self.work)
        bindir = root / "bin"
        bindir.mkdir()
        shim = bindir / "minibuild"  # always the working tree's minibuild, run by this interpreter
        shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m minibuild \"$@\"\n")
        shim.chmod(0o755)
        home = root / "home"
        home.mkdir()
        self.cwd = self.work
        pythonpath = os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p)
        self.env = {
            # the shim, then this interpreter's directory (its python3 imports minibuild's dependencies)
            "PATH": os.pathsep.join((str(bindir), str(Path(sys.executable).parent),
                                     os.environ.get("PATH", "/usr/bin:/bin"))),
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "COLUMNS": "120",
            "TERM": "dumb",
            "NO_COLOR": "1",
            "PYTHONPATH": pythonpath,
            "PYTHONDONTWRITEBYTECODE": "1",
            "MINIBUILD_FIXTURE_PADDING": "1",
            "MINIBUILD_HOME": str(self.store),
        }
        self.timings: list[tuple[str, float]] = []

    def run(self, command: str, *, allow_fail: bool, where: str) -> str:
        """Run one command (``cd`` and ``export`` are kept for the next ones) and return its normalised output."""
        first = command.split("\n", 1)[0]
        words = shlex.split(first) if first.startswith(("cd ", "export ")) else []
        if words[:1] == ["cd"] and len(words) == 2:
            new = (self.cwd / words[1]).resolve()
            if not new.is_dir() or not new.is_relative_to(self.work.resolve()):
                raise GenerationError(f"{where}: cd {words[1]}: not a directory inside the workspace")
            self.cwd = new
            return ""
        if words[:1] == ["export"] and len(words) == 2 and "=" in words[1]:
            name, _, value = words[1].partition("=")
            if name != "MINIBUILD_HOME":  # the store is always this document's fresh one
                self.env[name] = value
            return ""
        t0 = time.monotonic()
        try:
            res = subprocess.run(["bash", "-c", command], cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=COMMAND_TIMEOUT,
                                 preexec_fn=_umask022)  # new files' modes are part of COPY keys and layers
        except subprocess.TimeoutExpired:
            raise GenerationError(f"{where}: `{first}` took more than {COMMAND_TIMEOUT}s") from None
        self.timings.append((first, time.monotonic() - t0))
        out = res.stdout.decode("utf-8", errors="replace")
        if res.returncode != 0 and not allow_fail:
            raise GenerationError(f"{where}: `{first}` exited with {res.returncode} (mark the block allow-fail if "
                                  f"that is the lesson):\n{out}")
        return self.normalise(out)

    def normalise(self, out: str) -> str:
        """Replace what differs from run to run, and nothing else."""
        for path, name in ((self.store, "$MINIBUILD_HOME"), (self.work, "$WORK"), (self.root, "$TMP")):
            for form in {str(path), str(path.resolve())}:
                out = out.replace(form, name)
        out = re.sub(r"\bDONE \d+(?:\.\d+)?s\b", "DONE <t>", out)
        out = re.sub(r"^(#\d+) \d+\.\d{1,3}(?= |$)", r"\1 <t>", out, flags=re.M)  # a RUN's output: #4 0.346 added
        out = re.sub(r"\b\d+(?:\.\d+)?s done$", "<t> done", out, flags=re.M)  # #1 extracting ... 2.3s done
        out = re.sub(r"^\[\+\] Building \d+(?:\.\d+)?s", "[+] Building <t>", out, flags=re.M)
        out = re.sub(r'"seconds": -?\d+(?:\.\d+)?(?:e-?\d+)?', '"seconds": "<t>"', out)
        return "\n".join(line.rstrip() for line in out.splitlines())


# ---------------------------------------------------------------------------------------------- rendering


def _fence_for(body: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", body)), default=0)
    return "`" * max(3, longest + 1)


def render(template_path: Path, out_rel: str, *, repo: Path = REPO, keep: bool = False,
           timings: list[tuple[str, float]] | None = None) -> str:
    """The generated document for one template (runs every command in a fresh workspace and store)."""
    template_rel = os.path.relpath(template_path, repo)
    chunks = parse_template(template_path.read_text(encoding="utf-8"))
    root = Path(tempfile.mkdtemp(prefix="minibuild-doc-"))
    parts = [f"<!-- GENERATED from {template_rel} by docs/tutorial/generate.py: do not edit this file; edit the "
             f"template and run `{REGEN_HINT}` (CI runs it with --check). -->\n\n"]
    try:
        session = Session(root, repo)
        for chunk in chunks:
            if isinstance(chunk, Text):
                parts.append(chunk.text)
                continue
            lines: list[str] = []
            for k, cmd in enumerate(chunk.commands):
                where = f"{template_rel}:{chunk.line} (command {k + 1})"
                output = session.run(cmd, allow_fail=chunk.allow_fail, where=where)
                if not chunk.output_only:
                    lines.append("$ " + cmd)
                if output:
                    lines.append(output)
            body = "\n".join(lines)
            fence = _fence_for(body)
            parts.append(f"{fence}{chunk.lang}\n{body}\n{fence}\n")
        if timings is not None:
            timings.extend(session.timings)
    finally:
        if keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--check", action="store_true", help="regenerate in memory and diff against the committed files")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="only this document (e.g. tutorial.md); repeatable")
    ap.add_argument("--timings", action="store_true", help="print how long each command took (stderr)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary workspaces and stores (debugging)")
    args = ap.parse_args(argv)
    drift = False
    t_all = time.monotonic()
    for template_rel, out_rel in DOCUMENTS:
        if args.only and Path(out_rel).name not in args.only and out_rel not in args.only:
            continue
        t0 = time.monotonic()
        timings: list[tuple[str, float]] = []
        try:
            text = render(REPO / template_rel, out_rel, keep=args.keep, timings=timings)
        except GenerationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.timings:
            for cmd, secs in timings:
                print(f"  {secs:6.1f}s  {cmd}", file=sys.stderr)
        print(f"{out_rel}: generated in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        target = REPO / out_rel
        if args.check:
            old = target.read_text(encoding="utf-8") if target.exists() else ""
            if old != text:
                drift = True
                sys.stdout.writelines(difflib.unified_diff(
                    old.splitlines(keepends=True), text.splitlines(keepends=True),
                    fromfile=f"{out_rel} (committed)", tofile=f"{out_rel} (regenerated)"))
                print(f"{out_rel} is out of date: run `{REGEN_HINT}` and commit the result", file=sys.stderr)
        else:
            target.write_text(text, encoding="utf-8")
    print(f"total {time.monotonic() - t_all:.1f}s", file=sys.stderr)
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
