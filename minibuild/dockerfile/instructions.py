"""Typed Dockerfile instructions: one frozen dataclass per instruction, words kept unexpanded."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import field
from typing import ClassVar, TypeVar

from minibuild.dockerfile.expand import ShellLexer
from minibuild.dockerfile.syntax import Heredoc
from minibuild.errors import SourceSpan
from minibuild.record import record

__all__ = [
    "AddInstruction",
    "ArgInstruction",
    "ArgSpec",
    "CmdInstruction",
    "CopyInstruction",
    "Dockerfile",
    "EntrypointInstruction",
    "EnvInstruction",
    "ExposeInstruction",
    "FromInstruction",
    "HealthcheckInstruction",
    "Instruction",
    "KeyValue",
    "LabelInstruction",
    "MaintainerInstruction",
    "OnbuildInstruction",
    "RunInstruction",
    "ShellInstruction",
    "SourceContent",
    "Stage",
    "StopsignalInstruction",
    "UserInstruction",
    "VolumeInstruction",
    "WorkdirInstruction",
    "expand",
    "expand_heredoc",
]

_NO_SPAN = SourceSpan(line=0)


@record
class KeyValue:
    """One ``key=value`` of ENV or LABEL; ``no_delim`` marks the legacy ``ENV key value`` form."""

    key: str
    value: str
    no_delim: bool = False


@record
class ArgSpec:
    """One name of an ARG instruction, with its default (None when it has none)."""

    key: str
    value: str | None = None
    doc_comment: str = field(default="", compare=False)


@record
class SourceContent:
    """A heredoc used as a COPY/ADD source: file name, data (already chomped), expand flag."""

    path: str
    data: str
    expand: bool


@record
class Instruction:
    """What every instruction carries: where it stands and its source text."""

    keyword: ClassVar[str] = ""
    span: SourceSpan = field(default=_NO_SPAN, compare=False)
    original: str = ""
    flags: tuple[str, ...] = ()  # the raw --flags as written (after quote removal)
    comments: tuple[str, ...] = field(default=(), compare=False)  # comment block right above

    @property
    def flags_used(self) -> tuple[str, ...]:
        """Names of the flags given (``mount`` for ``--mount=...``), sorted, without repeats."""
        return tuple(sorted({f[2:].partition("=")[0] for f in self.flags if f.startswith("--")}))

    @property
    def name(self) -> str:
        """The instruction keyword in upper case (``RUN``, ``COPY`` ...)."""
        return self.keyword


@record
class FromInstruction(Instruction):
    """``FROM [--platform=p] base [AS name]``."""

    keyword: ClassVar[str] = "FROM"
    base: str
    stage_name: str | None = None  # lower-cased, as BuildKit stores it
    platform: str | None = None


@record
class _CommandLine(Instruction):
    """An instruction with a command: exec form (JSON) or shell form (one string)."""

    command: tuple[str, ...] = ()
    prepend_shell: bool = True

    @property
    def json_form(self) -> bool:
        """True for the exec (JSON array) form."""
        return not self.prepend_shell


@record
class RunInstruction(_CommandLine):
    """``RUN [--mount=...] [--network=...] [--security=...] cmd`` with its heredocs."""

    keyword: ClassVar[str] = "RUN"
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[str, ...] = ()  # raw --mount values; see minibuild.dockerfile.mounts.parse_mount
    network: str | None = None
    security: str | None = None


@record
class CmdInstruction(_CommandLine):
    """``CMD``."""

    keyword: ClassVar[str] = "CMD"


@record
class EntrypointInstruction(_CommandLine):
    """``ENTRYPOINT``."""

    keyword: ClassVar[str] = "ENTRYPOINT"


@record
class ShellInstruction(Instruction):
    """``SHELL ["executable", "params"]`` (JSON form only)."""

    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@record
class LabelInstruction(Instruction):
    """``LABEL k=v ...``."""

    keyword: ClassVar[str] = "LABEL"
    labels: tuple[KeyValue, ...]


@record
class EnvInstruction(Instruction):
    """``ENV k=v ...`` or legacy ``ENV k v``."""

    keyword: ClassVar[str] = "ENV"
    env: tuple[KeyValue, ...]


@record
class MaintainerInstruction(Instruction):
    """``MAINTAINER name`` (deprecated)."""

    keyword: ClassVar[str] = "MAINTAINER"
    maintainer: str


@record
class ExposeInstruction(Instruction):
    """``EXPOSE port[/proto] ...`` (sorted as BuildKit sorts them)."""

    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]


@record
class _SourcesAndDest(Instruction):
    """The shared shape of COPY and ADD: sources, a destination, heredoc contents."""

    sources: tuple[str, ...] = ()  # source paths (heredoc words removed)
    dest: str = ""
    contents: tuple[SourceContent, ...] = ()  # heredoc sources, in order
    heredocs: tuple[Heredoc, ...] = ()  # the raw heredocs of the line
    chown: str = ""
    chmod: str = ""
    link: bool = False
    exclude: tuple[str, ...] = ()


@record
class CopyInstruction(_SourcesAndDest):
    """``COPY [--from=] [--chown=] [--chmod=] [--link] [--parents] [--exclude=] src... dest``."""

    keyword: ClassVar[str] = "COPY"
    from_: str = ""
    parents: bool = False


@record
class AddInstruction(_SourcesAndDest):
    """``ADD`` (COPY's flags minus --from/--parents, plus --checksum, --keep-git-dir, --unpack)."""

    keyword: ClassVar[str] = "ADD"
    checksum: str = ""
    keep_git_dir: bool | None = None
    unpack: bool | None = None


@record
class VolumeInstruction(Instruction):
    """``VOLUME path ...``."""

    keyword: ClassVar[str] = "VOLUME"
    volumes: tuple[str, ...]


@record
class UserInstruction(Instruction):
    """``USER user[:group]``."""

    keyword: ClassVar[str] = "USER"
    user: str


@record
class WorkdirInstruction(Instruction):
    """``WORKDIR path``."""

    keyword: ClassVar[str] = "WORKDIR"
    path: str


@record
class ArgInstruction(Instruction):
    """``ARG name[=default] ...``."""

    keyword: ClassVar[str] = "ARG"
    args: tuple[ArgSpec, ...]


@record
class OnbuildInstruction(Instruction):
    """``ONBUILD trigger``: ``expression`` is the trigger text BuildKit stores in the image."""

    keyword: ClassVar[str] = "ONBUILD"
    expression: str
    trigger: Instruction


@record
class StopsignalInstruction(Instruction):
    """``STOPSIGNAL signal``."""

    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str


@record
class HealthcheckInstruction(Instruction):
    """``HEALTHCHECK NONE`` or ``HEALTHCHECK [opts] CMD ...``; durations in nanoseconds (0 = unset)."""

    keyword: ClassVar[str] = "HEALTHCHECK"
    test: tuple[str, ...]  # ("NONE",) | ("CMD-SHELL", "cmd") | ("CMD", arg, ...)
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@record
class Stage:
    """One build stage: its FROM and the instructions after it."""

    index: int
    name: str | None  # lower-cased ``AS`` name, or None
    base: str  # the FROM image word, unexpanded
    platform: str | None
    from_: FromInstruction
    instructions: tuple[Instruction, ...]
    span: SourceSpan = field(default=_NO_SPAN, compare=False)
    doc_comment: str = field(default="", compare=False)

    @property
    def ref(self) -> str:
        """How other stages refer to this one: its name, else its index."""
        return self.name if self.name is not None else str(self.index)


@record
class Dockerfile:
    """A parsed Dockerfile: global ARGs, stages, escape token, directives and warnings."""

    meta_args: tuple[ArgInstruction, ...]
    stages: tuple[Stage, ...]
    escape: str = "\\"
    directives: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()
    filename: str = "Dockerfile"

    def stage(self, ref: str) -> Stage | None:
        """The stage named ``ref`` (case-insensitive) or with that index, else None."""
        low = ref.lower()
        for stage in self.stages:
            if stage.name == low:
                return stage
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


# --- expansion -------------------------------------------------------------------------------

I = TypeVar("I", bound=Instruction)


def expand(instr: I, env: Mapping[str, str], escape: str = "\\") -> I:
    """Return a copy of ``instr`` with its words expanded as BuildKit's ``Expand`` methods do.

    Expanded: ENV/LABEL keys and values, ARG names and defaults, COPY/ADD sources, dest, --chown,
    --chmod (ADD also --checksum), WORKDIR, USER, VOLUME, STOPSIGNAL, EXPOSE (split into words),
    FROM base and --platform, RUN --mount values.  ``COPY --from`` is never expanded (the stage graph refuses
    a word that would change, as BuildKit does).  RUN/CMD/ENTRYPOINT commands and heredoc bodies are left
    alone (the shell or the builder handles those).  A ``${V:?msg}`` error
    is an ExpansionError carrying the instruction's span.
    """
    lexer = ShellLexer(escape)

    def word(text: str) -> str:
        return lexer.process_word(text, env, span=instr.span)

    def words(text: str) -> list[str]:
        return lexer.process_words(text, env, span=instr.span)

    def kvs(items: tuple[KeyValue, ...]) -> tuple[KeyValue, ...]:
        return tuple(dataclasses.replace(kv, key=word(kv.key), value=word(kv.value)) for kv in items)

    new: Instruction
    match instr:
        case EnvInstruction():
            new = dataclasses.replace(instr, env=kvs(instr.env))
        case LabelInstruction():
            new = dataclasses.replace(instr, labels=kvs(instr.labels))
        case ArgInstruction():
            new = dataclasses.replace(
                instr,
                args=tuple(
                    dataclasses.replace(a, key=word(a.key), value=None if a.value is None else word(a.value))
                    for a in instr.args
                ),
            )
        case CopyInstruction():
            new = dataclasses.replace(
                instr,
                sources=tuple(word(s) for s in instr.sources),
                dest=word(instr.dest),
                chown=word(instr.chown),
                chmod=word(instr.chmod),
            )
        case AddInstruction():
            new = dataclasses.replace(
                instr,
                sources=tuple(word(s) for s in instr.sources),
                dest=word(instr.dest),
                chown=word(instr.chown),
                chmod=word(instr.chmod),
                checksum=word(instr.checksum),
            )
        case WorkdirInstruction():
            new = dataclasses.replace(instr, path=word(instr.path))
        case UserInstruction():
            new = dataclasses.replace(instr, user=word(instr.user))
        case VolumeInstruction():
            new = dataclasses.replace(instr, volumes=tuple(word(v) for v in instr.volumes))
        case StopsignalInstruction():
            new = dataclasses.replace(instr, signal=word(instr.signal))
        case ExposeInstruction():
            new = dataclasses.replace(instr, ports=tuple(p for port in instr.ports for p in words(port)))
        case FromInstruction():
            new = dataclasses.replace(
                instr,
                base=word(instr.base),
                platform=None if instr.platform is None else word(instr.platform),
            )
        case RunInstruction():
            new = dataclasses.replace(instr, mounts=tuple(word(m) for m in instr.mounts))
        case _:
            new = instr
    return new


def expand_heredoc(content: str, env: Mapping[str, str]) -> str:
    """Expand a heredoc body as BuildKit does: escape ``\\``, quotes kept literal."""
    return ShellLexer("\\", skip_process_quotes=True).process_word(content, env)

