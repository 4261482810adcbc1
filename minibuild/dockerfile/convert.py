"""Syntax nodes to typed instructions and stages (BuildKit's instructions/parse.go)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TypedDict

from minibuild.dockerfile.godump import go_quote, go_trim_space
from minibuild.dockerfile.instructions import (
    AddInstruction,
    ArgInstruction,
    ArgSpec,
    CmdInstruction,
    CopyInstruction,
    Dockerfile,
    EntrypointInstruction,
    EnvInstruction,
    ExposeInstruction,
    FromInstruction,
    HealthcheckInstruction,
    Instruction,
    KeyValue,
    LabelInstruction,
    MaintainerInstruction,
    OnbuildInstruction,
    RunInstruction,
    ShellInstruction,
    SourceContent,
    Stage,
    StopsignalInstruction,
    UserInstruction,
    VolumeInstruction,
    WorkdirInstruction,
)
from minibuild.dockerfile.mounts import MountError, from_variable, parse_mount
from minibuild.dockerfile.source import parse, parse_heredoc_word
from minibuild.dockerfile.suggest import with_suggestion
from minibuild.dockerfile.syntax import Heredoc, SyntaxNode, SyntaxTree, is_file_name
from minibuild.errors import DockerfileError, SourceSpan

__all__ = ["INSTRUCTIONS", "parse_flags", "parse_go_duration", "parse_dockerfile", "parse_instruction", "parse_instruction_line", "to_dockerfile"]

INSTRUCTIONS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)  # fmt: skip
_VALID_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*\Z")
_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)
_NETWORKS = ("default", "none", "host")
_SECURITY = ("sandbox", "insecure")
_BOOL, _STRING, _STRINGS = "bool", "string", "strings"


class _Common(TypedDict):
    """The fields every Instruction takes from its SyntaxNode."""

    span: SourceSpan
    original: str
    flags: tuple[str, ...]
    comments: tuple[str, ...]


class _Error(Exception):
    """Internal: a message to raise as DockerfileError at the node's span."""


# --- flags (BuildKit's BFlags) ----------------------------------------------------------------


def parse_flags(
    args: Sequence[str],
    spec: Mapping[str, str],
    defaults: Mapping[str, str | bool] | None = None,
) -> tuple[dict[str, str | list[str]], set[str]]:
    """BuildKit's BFlags.Parse: ``spec`` maps names to "bool"/"string"/"strings".

    Returns the values (bools as "true"/"false", lists for "strings") and the names used.
    """
    values: dict[str, str | list[str]] = {}
    for name, kind in spec.items():
        default = (defaults or {}).get(name)
        if kind == _BOOL:
            values[name] = "true" if default is True else "false"
        elif kind == _STRINGS:
            values[name] = []
        else:
            values[name] = default if isinstance(default, str) else ""
    used: set[str] = set()
    for a in args:
        if a == "--":
            break
        if not a.startswith("--"):
            raise _Error(f"arg should start with -- : {a}")
        flag_name, has_value, value = a.partition("=")
        name = flag_name[2:]
        flag_kind = spec.get(name)
        if flag_kind is None:
            raise _Error(with_suggestion(f"unknown flag: {flag_name}", name, spec, case_sensitive=True))
        if name in used and flag_kind != _STRINGS:
            raise _Error(f"duplicate flag specified: {flag_name}")
        used.add(name)
        if flag_kind == _BOOL:
            if has_value and value == "":
                raise _Error(f"missing a value on flag: {flag_name}")
            low = value.lower()
            if low in ("true", ""):
                values[name] = "true"
            elif low == "false":
                values[name] = "false"
            else:
                raise _Error(f"expecting boolean value for flag {flag_name}, not: {value}")
        elif flag_kind == _STRING:
            if not has_value:
                raise _Error(f"missing a value on flag: {flag_name}")
            values[name] = value
        else:
            if not has_value:
                raise _Error(f"missing a value on flag: {flag_name}")
            lst = values[name]
            assert isinstance(lst, list)
            lst.append(value)
    return values, used


def _s(values: dict[str, str | list[str]], name: str) -> str:
    v = values[name]
    assert isinstance(v, str)
    return v


def _l(values: dict[str, str | list[str]], name: str) -> tuple[str, ...]:
    v = values[name]
    assert isinstance(v, list)
    return tuple(v)


# --- durations (Go time.ParseDuration) ---------------------------------------------------------

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]+)")


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` in nanoseconds (``1m30s``, ``500ms``, ``0``)."""
    orig = text
    bad = _Error(f"time: invalid duration {go_quote(orig)}")
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if text == "":
        raise bad
    total = 0.0
    pos = 0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None or m.group(1) in ("", "."):
            if m is not None and m.group(1) == "":
                raise _Error(f"time: invalid duration {go_quote(orig)}")
            raise bad
        unit = _UNITS.get(m.group(2))
        if unit is None:
            raise _Error(f"time: unknown unit {go_quote(m.group(2))} in duration {go_quote(orig)}")
        total += float(m.group(1)) * unit
        pos = m.end()
    return sign * int(total)


def _interval(values: dict[str, str | list[str]], name: str) -> int:
    text = _s(values, name)
    if text == "":
        return 0
    d = parse_go_duration(text)
    if d == 0:
        return 0
    if d < 1_000_000:
        raise _Error(f"Interval {go_quote(name)} cannot be less than 1ms")
    return d


# --- per-instruction parsers ------------------------------------------------------------------


def _doc_comment(comments: tuple[str, ...], name: str | None) -> str:
    if not name:
        return ""
    for line in comments:
        if line.startswith(name + " "):
            return line[len(name) + 1 :]
    return ""


def _node_args(node: SyntaxNode) -> list[str]:
    if node.sub is not None:
        return [node.sub.keyword, *_node_args(node.sub)]
    return list(node.args)


def _kvps(args: list[str], name: str) -> tuple[KeyValue, ...]:
    if not args:
        raise _Error(f"{name} requires at least one argument")
    if len(args) % 3:
        raise _Error(f"Bad input to {name}, too many arguments")
    out = []
    for j in range(0, len(args), 3):
        if args[j] == "":
            raise _Error(f"{name} names can not be blank")
        out.append(KeyValue(key=args[j], value=args[j + 1], no_delim=args[j + 2] == ""))
    return tuple(out)


def _sources_and_dest(
    args: list[str], heredocs: tuple[Heredoc, ...], command: str
) -> tuple[tuple[str, ...], str, tuple[SourceContent, ...]]:
    srcs, dest = args[:-1], args[-1]
    if _safe_heredoc(dest) is not None:
        raise _Error(f"{command} cannot accept a heredoc as a destination")
    lookup = {h.name: h for h in heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for src in srcs:
        doc = _safe_heredoc(src)
        if doc is not None:
            if not is_file_name(doc.name):
                raise _Error(f"{command} heredoc name {doc.name!r} must be a single file name "
                             "(no '/', '.', '..' or NUL)")
            found = lookup.get(doc.name)
            data = found.content if found is not None else ""
            if doc.chomp:
                data = "\n".join(line.lstrip("\t") for line in data.split("\n"))
            contents.append(SourceContent(path=doc.name, data=data, expand=doc.expand))
        else:
            paths.append(src)
    return tuple(paths), dest, tuple(contents)


def _safe_heredoc(word: str) -> Heredoc | None:
    try:
        return parse_heredoc_word(word)
    except Exception:  # MustParseHeredoc discards errors
        return None


def _cmdline(args: list[str], is_json: bool) -> tuple[str, ...]:
    if not args:
        return ()
    if is_json:
        return tuple(args)
    return (" ".join(args),)


def _build(node: SyntaxNode, heredocs: tuple[Heredoc, ...]) -> Instruction:
    cmd = node.value
    args = _node_args(node)
    common: _Common = {"span": node.span, "original": node.original, "flags": node.flags, "comments": node.comments}
    flags = node.flags

    def no_flags() -> None:
        parse_flags(flags, {})

    match cmd:
        case "env":
            no_flags()
            return EnvInstruction(env=_kvps(args, "ENV"), **common)
        case "maintainer":
            if len(args) != 1:
                raise _Error("MAINTAINER requires exactly one argument")
            no_flags()
            return MaintainerInstruction(maintainer=args[0], **common)
        case "label":
            no_flags()
            return LabelInstruction(labels=_kvps(args, "LABEL"), **common)
        case "add":
            if len(args) < 2:
                raise _Error(
                    "ADD requires at least two arguments, but only one was provided. "
                    "Destination could not be determined"
                )
            v, used = parse_flags(
                flags,
                {"chown": _STRING, "chmod": _STRING, "link": _BOOL, "keep-git-dir": _BOOL,
                 "checksum": _STRING, "unpack": _BOOL, "exclude": _STRINGS},
            )  # fmt: skip
            sources, dest, contents = _sources_and_dest(args, heredocs, "ADD")
            return AddInstruction(
                sources=sources,
                dest=dest,
                contents=contents,
                heredocs=heredocs,
                chown=_s(v, "chown"),
                chmod=_s(v, "chmod"),
                link=_s(v, "link") == "true",
                exclude=_l(v, "exclude"),
                checksum=_s(v, "checksum"),
                keep_git_dir=(_s(v, "keep-git-dir") == "true") if "keep-git-dir" in used else None,
                unpack=(_s(v, "unpack") == "true") if "unpack" in used else None,
                **common,
            )
        case "copy":
            if len(args) < 2:
                raise _Error(
                    "COPY requires at least two arguments, but only one was provided. "
                    "Destination could not be determined"
                )
            v, _ = parse_flags(
                flags,
                {"chown": _STRING, "from": _STRING, "chmod": _STRING, "link": _BOOL,
                 "exclude": _STRINGS, "parents": _BOOL},
            )  # fmt: skip
            sources, dest, contents = _sources_and_dest(args, heredocs, "COPY")
            return CopyInstruction(
                sources=sources,
                dest=dest,
                contents=contents,
                heredocs=heredocs,
                chown=_s(v, "chown"),
                chmod=_s(v, "chmod"),
                link=_s(v, "link") == "true",
                exclude=_l(v, "exclude"),
                from_=_s(v, "from"),
                parents=_s(v, "parents") == "true",
                **common,
            )
        case "from":
            stage_name: str | None = None
            if len(args) == 3 and args[1].lower() == "as":
                stage_name = args[2].lower()
                if not _VALID_STAGE_NAME.match(stage_name):
                    raise _Error(
                        f"invalid name for build stage: {go_quote(args[2])}, "
                        "name can't start with a number or contain symbols"
                    )
            elif len(args) != 1:
                raise _Error("FROM requires either one or three arguments")
            v, used = parse_flags(flags, {"platform": _STRING})
            return FromInstruction(
                base=args[0],
                stage_name=stage_name,
                platform=_s(v, "platform") if "platform" in used else None,
                **common,
            )
        case "onbuild":
            if not args:
                raise _Error("ONBUILD requires at least one argument")
            no_flags()
            trigger_kw = go_trim_space(args[0]).upper()
            if trigger_kw == "ONBUILD":
                raise _Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
            if trigger_kw in ("MAINTAINER", "FROM"):
                raise _Error(f"{trigger_kw} isn't allowed as an ONBUILD trigger")
            trigger_line = _ONBUILD_PREFIX.sub("", node.original, count=1)
            expression = trigger_line
            for doc in heredocs:
                expression += "\n" + doc.content + doc.name
            assert node.sub is not None
            sub = SyntaxNode(
                keyword=node.sub.keyword,
                args=node.sub.args,
                flags=node.sub.flags,
                json=node.sub.json,
                sub=node.sub.sub,
                heredocs=heredocs,
                original=trigger_line,
                start_line=node.start_line,
                end_line=node.end_line,
                filename=node.filename,
            )
            return OnbuildInstruction(expression=expression, trigger=_build(sub, heredocs), **common)
        case "workdir":
            if len(args) != 1:
                raise _Error("WORKDIR requires exactly one argument")
            no_flags()
            return WorkdirInstruction(path=args[0], **common)
        case "run":
            v, _ = parse_flags(flags, {"mount": _STRINGS, "network": _STRING, "security": _STRING})
            network = _s(v, "network") or None
            if network is not None and network not in _NETWORKS:
                raise _Error(f"invalid network mode {go_quote(network)}")
            security = _s(v, "security") or None
            if security is not None and security not in _SECURITY:
                raise _Error(f"security {go_quote(security)} is not valid")
            if any(from_variable(m) for m in _l(v, "mount")):
                raise _Error("'from' doesn't support variable expansion, define alias stage instead")
            for raw in _l(v, "mount"):
                if "$" not in raw:  # one with a variable is checked once expanded, when its stage is built
                    try:
                        parse_mount(raw)
                    except MountError as exc:
                        raise _Error(str(exc)) from None
            return RunInstruction(
                command=_cmdline(args, node.json),
                prepend_shell=not node.json,
                heredocs=heredocs,
                mounts=_l(v, "mount"),
                network=network,
                security=security,
                **common,
            )
        case "cmd":
            no_flags()
            return CmdInstruction(command=_cmdline(args, node.json), prepend_shell=not node.json, **common)
        case "entrypoint":
            no_flags()
            return EntrypointInstruction(
                command=_cmdline(args, node.json), prepend_shell=not node.json, **common
            )
        case "healthcheck":
            return _healthcheck(node, args, common)
        case "expose":
            if not args:
                raise _Error("EXPOSE requires at least one argument")
            no_flags()
            return ExposeInstruction(ports=tuple(sorted(args)), **common)
        case "user":
            if len(args) != 1:
                raise _Error("USER requires exactly one argument")
            no_flags()
            return UserInstruction(user=args[0], **common)
        case "volume":
            if not args:
                raise _Error("VOLUME requires at least one argument")
            no_flags()
            vols = []
            for a in args:
                a = go_trim_space(a)
                if a == "":
                    raise _Error("VOLUME specified can not be an empty string")
                vols.append(a)
            return VolumeInstruction(volumes=tuple(vols), **common)
        case "stopsignal":
            if len(args) != 1:
                raise _Error("STOPSIGNAL requires exactly one argument")
            return StopsignalInstruction(signal=args[0], **common)
        case "arg":
            if not args:
                raise _Error("ARG requires at least one argument")
            specs = []
            for a in args:
                if "=" in a:
                    k, val = a.split("=", 1)
                    if k == "":
                        raise _Error("ARG names can not be blank")
                    specs.append(ArgSpec(key=k, value=val, doc_comment=_doc_comment(node.comments, k)))
                else:
                    specs.append(ArgSpec(key=a, doc_comment=_doc_comment(node.comments, a)))
            return ArgInstruction(args=tuple(specs), **common)
        case "shell":
            no_flags()
            shell = _cmdline(args, node.json)
            if not shell:
                raise _Error("SHELL requires at least one argument")
            if not node.json:
                raise _Error("SHELL requires the arguments to be in JSON form")
            return ShellInstruction(shell=shell, **common)
    raise _Error(
        with_suggestion(f"unknown instruction: {node.keyword}", node.keyword, INSTRUCTIONS, case_sensitive=False)
    )


def _healthcheck(node: SyntaxNode, args: list[str], common: _Common) -> HealthcheckInstruction:
    if not args:
        raise _Error("HEALTHCHECK requires at least one argument")
    typ = args[0].upper()
    rest = args[1:]
    if typ == "NONE":
        if rest:
            raise _Error("HEALTHCHECK NONE takes no arguments")
        return HealthcheckInstruction(test=("NONE",), **common)
    v, _ = parse_flags(
        node.flags,
        {"interval": _STRING, "timeout": _STRING, "start-period": _STRING,
         "start-interval": _STRING, "retries": _STRING},
    )  # fmt: skip
    if typ != "CMD":
        raise _Error(f"Unknown type {go_quote(typ)} in HEALTHCHECK (try CMD)")
    cmd = _cmdline(rest, node.json)
    if not cmd:
        raise _Error("Missing command after HEALTHCHECK CMD")
    test = ("CMD" if node.json else "CMD-SHELL", *cmd)
    interval = _interval(v, "interval")
    timeout = _interval(v, "timeout")
    start_period = _interval(v, "start-period")
    start_interval = _interval(v, "start-interval")
    retries = 0
    text = _s(v, "retries")
    if text != "":
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise _Error(f'strconv.ParseInt: parsing {go_quote(text)}: invalid syntax')
        retries = int(text)
        if not -(2**31) <= retries < 2**31:
            raise _Error(f'strconv.ParseInt: parsing {go_quote(text)}: value out of range')
        if retries < 0:
            raise _Error(f"--retries cannot be negative ({retries})")
    return HealthcheckInstruction(
        test=test,
        interval=interval,
        timeout=timeout,
        start_period=start_period,
        start_interval=start_interval,
        retries=retries,
        **common,
    )


# --- public -------------------------------------------------------------------------------------


def parse_instruction(node: SyntaxNode) -> Instruction:
    """One syntax node to its typed instruction; errors are DockerfileError at the node's lines."""
    try:
        return _build(node, node.heredocs)
    except _Error as exc:
        raise DockerfileError(str(exc), span=node.span) from None


def parse_instruction_line(text: str, *, escape: str = "\\", filename: str = "Dockerfile") -> Instruction:
    """Parse one instruction given as text (e.g. an ONBUILD trigger from an image config)."""
    prefix = f"# escape={escape}\n" if escape != "\\" else ""
    tree = parse(prefix + text, filename=filename)
    if len(tree.children) != 1:
        raise DockerfileError(f"expected one instruction, found {len(tree.children)}")
    return parse_instruction(tree.children[0])


def to_dockerfile(tree: SyntaxTree) -> Dockerfile:
    """Typed instructions grouped into stages, with the global ARGs before the first FROM."""
    meta_args: list[ArgInstruction] = []
    stages: list[tuple[FromInstruction, list[Instruction]]] = []
    for node in tree.children:
        instr = parse_instruction(node)
        if not stages:
            if isinstance(instr, ArgInstruction):
                meta_args.append(instr)
                continue
            if not isinstance(instr, FromInstruction):
                raise DockerfileError("no build stage in current context", span=node.span)
        if isinstance(instr, FromInstruction):
            stages.append((instr, []))
        else:
            stages[-1][1].append(instr)
    built = []
    for index, (frm, body) in enumerate(stages):
        last = body[-1].span if body else frm.span
        built.append(
            Stage(
                index=index,
                name=frm.stage_name,
                base=frm.base,
                platform=frm.platform,
                from_=frm,
                instructions=tuple(body),
                doc_comment=_doc_comment(frm.comments, frm.stage_name),
                span=SourceSpan(file=frm.span.file, line=frm.span.line, end_line=last.end_line or last.line),
            )
        )
    return Dockerfile(
        meta_args=tuple(meta_args),
        stages=tuple(built),
        escape=tree.escape,
        directives=tuple((d.name, d.value) for d in tree.directives),
        warnings=tree.warnings,
        filename=tree.filename,
    )


def parse_dockerfile(text: str | bytes, *, filename: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile text into stages of typed instructions (words unexpanded)."""
    return to_dockerfile(parse(text, filename=filename))
