"""Development tool: which commands the RUN lines of busybox/alpine-based Dockerfiles use, and what share of those
RUN lines the emulated shell can run whole (every command implemented).

    .venv/bin/python tools/sh_coverage.py [CORPUS_DIR] [--top N] [--markdown]

CORPUS_DIR defaults to /work/shared/conformance/realworld/corpus (reference data: read here, never by tests).
A stage's base is resolved through global ARG defaults and earlier stages (`FROM builder`); "strict" counts
bases whose image is `alpine` or `busybox`, "alpine-based" also images whose tag says alpine (`node:20-alpine`).
The commands of a RUN line are the first words of every simple command, through && || ; | subshells, groups,
if/for/while/case bodies and $(...); a function the script defines counts as implemented, a command given by
an expansion (`$CC`) or a path into the image (`./configure`) as not.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections import Counter
from pathlib import Path

from minibuild.dockerfile.convert import parse_dockerfile
from minibuild.dockerfile.instructions import RunInstruction
from minibuild.sh.ast import CmdSub, FuncDef, Simple, Word
from minibuild.sh.builtins import REGISTRY
from minibuild.sh.interp import SHELLS
from minibuild.sh.lexer import literal_text
from minibuild.sh.parser import parse
from minibuild.sh.shellbuiltins import SHELL_BUILTINS

CORPUS = Path("/work/shared/conformance/realworld/corpus")
IMPLEMENTED = set(REGISTRY) | set(SHELL_BUILTINS) | set(SHELLS)
# the alpine fixture's apk is a shell script the emulated shell runs (it records names, installs nothing);
# a real alpine image's apk is a program: counted both ways
STAND_IN = {"apk"}
PARSE_ERROR = "(script the emulated shell cannot parse)"


def _expand_args(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}?",
                  lambda m: args.get(m.group(1)) or (m.group(2) or ""), text)


def image_name(ref: str) -> tuple[str, str]:
    """(repository's last path part, tag) of an image reference, lower-cased."""
    ref = ref.lower().split("@", 1)[0]
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    return name.rsplit("/", 1)[-1], tag


def stage_bases(text: str) -> list[tuple[str, tuple[RunInstruction, ...]]]:
    """(resolved base image, RUN instructions) per stage."""
    df = parse_dockerfile(text)
    args = {a.key: a.value or "" for m in df.meta_args for a in m.args}
    resolved: dict[str, str] = {}
    out: list[tuple[str, tuple[RunInstruction, ...]]] = []
    for st in df.stages:
        base = _expand_args(st.base, args)
        base = resolved.get(base.lower(), base)
        if st.name:
            resolved[st.name] = base
        resolved[str(st.index)] = base
        out.append((base, tuple(i for i in st.instructions if isinstance(i, RunInstruction))))
    return out


def run_script_text(run: RunInstruction) -> str | None:
    """The shell script of a RUN line (None for the exec form)."""
    if not run.prepend_shell:
        return None
    cmd = " ".join(run.command)
    if run.heredocs:
        return cmd + "\n" + "".join(d.content + d.name + "\n" for d in run.heredocs)
    return cmd


def commands(script: str) -> list[str]:
    """The command names of a script (PARSE_ERROR when it does not parse)."""
    try:
        tree = parse(script)
    except Exception:  # noqa: BLE001 - any parse failure counts against the line
        return [PARSE_ERROR]
    found: list[str] = []
    defined: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, FuncDef):
            defined.add(node.name)
        if isinstance(node, Simple) and node.words:
            name = literal_text(node.words[0])
            found.append("(a command given by an expansion)" if name is None else name)
        if isinstance(node, CmdSub) and not dataclasses.is_dataclass(node.body):
            return
        if isinstance(node, (tuple, list)):
            for x in node:
                walk(x)
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            for f in dataclasses.fields(node):
                walk(getattr(node, f.name))

    walk(tree)
    return [c for c in found if c not in defined]


def classify(name: str) -> str:
    if "/" in name and name.rsplit("/", 1)[-1] in IMPLEMENTED and name.startswith(("/bin/", "/usr/bin/", "/sbin/",
                                                                                     "/usr/sbin/")):
        return name.rsplit("/", 1)[-1]
    if "/" in name:
        return "(a path into the image, e.g. ./configure)"
    return name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", type=Path, default=CORPUS)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--markdown", action="store_true")
    opts = ap.parse_args()
    for label, strict in (("strict (alpine, busybox)", True), ("alpine-based (also *-alpine tags)", False)):
        lines = ok = ok_stand_in = files = 0
        cmd_lines: Counter[str] = Counter()
        for path in sorted(opts.corpus.iterdir()):
            try:
                stages = stage_bases(path.read_text(errors="replace"))
            except Exception:  # noqa: BLE001 - a Dockerfile minibuild rejects is skipped
                continue
            used = False
            for base, runs in stages:
                name, tag = image_name(base)
                if not (name in ("alpine", "busybox") or (not strict and "alpine" in tag)):
                    continue
                for run in runs:
                    script = run_script_text(run)
                    if script is None:
                        continue
                    used = True
                    lines += 1
                    names = {classify(c) for c in commands(script)}
                    cmd_lines.update(names)
                    if all(n in IMPLEMENTED for n in names):
                        ok += 1
                    if all(n in IMPLEMENTED | STAND_IN for n in names):
                        ok_stand_in += 1
            files += used
        share = 100.0 * ok / lines if lines else 0.0
        share2 = 100.0 * ok_stand_in / lines if lines else 0.0
        print(f"## {label}: {files} Dockerfiles, {lines} RUN lines; every command implemented: {ok} = "
              f"{share:.1f}% ({ok_stand_in} = {share2:.1f}% counting the alpine stand-in's apk)\n")
        if opts.markdown:
            print("| command | RUN lines | implemented |\n|---|---|---|")
        for name, n in cmd_lines.most_common(opts.top):
            mark = "yes" if name in IMPLEMENTED else "stand-in" if name in STAND_IN else "no"
            print(f"| `{name}` | {n} | {mark} |" if opts.markdown else f"{n:6d}  {mark:8s}  {name}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
