"""Typed instructions: BuildKit's instructions tests (instructions_cases.json) plus our own."""

from __future__ import annotations

import pytest

from minibuild.dockerfile import (
    AddInstruction,
    ArgInstruction,
    CmdInstruction,
    CopyInstruction,
    EntrypointInstruction,
    EnvInstruction,
    ExpansionError,
    FromInstruction,
    HealthcheckInstruction,
    KeyValue,
    OnbuildInstruction,
    RunInstruction,
    ShellInstruction,
    expand,
    expand_heredoc,
    parse,
    parse_dockerfile,
    parse_instruction,
    parse_instruction_line,
)
from minibuild.dockerfile.convert import parse_flags
from minibuild.errors import DockerfileError

from .conftest import derived

CASES = derived("instructions_cases.json")


def one(text: str):
    return parse_instruction(parse(text).children[0])


@pytest.mark.parametrize(
    "case",
    CASES["exactly_one_argument"] + CASES["at_least_one_argument"] + CASES["no_destination"],
    ids=lambda c: c["dockerfile"],
)
def test_argument_count_errors(case: dict) -> None:
    with pytest.raises(DockerfileError) as info:
        one(case["dockerfile"])
    assert info.value.message == case["error"]


@pytest.mark.parametrize("case", CASES["error_cases"], ids=lambda c: c["name"])
def test_error_cases(case: dict) -> None:
    with pytest.raises(DockerfileError) as info:
        one(case["dockerfile"])
    assert case["error_contains"] in info.value.message


def test_too_many_and_blank_names() -> None:
    # The Go test builds these ASTs by hand; "ENV =arg2" is the same AST for blank names.
    for kw in ("ENV", "LABEL"):
        with pytest.raises(DockerfileError, match=f"{kw} names can not be blank"):
            one(f"{kw} =arg2")
    with pytest.raises(DockerfileError, match="ARG names can not be blank"):
        one("ARG =x")


def test_healthcheck_cmd_joins_shell_form() -> None:
    instr = one("HEALTHCHECK CMD hello world")
    assert isinstance(instr, HealthcheckInstruction)
    assert list(instr.test) == CASES["healthcheck_cmd"]["expected_test"]


def test_healthcheck_intervals() -> None:
    with pytest.raises(DockerfileError, match="cannot be less than 1ms"):
        one("HEALTHCHECK --interval=1us CMD true")
    assert one("HEALTHCHECK --interval=0ms CMD true").interval == 0
    assert one("HEALTHCHECK --interval=1ms CMD true").interval == 1_000_000
    h = one("HEALTHCHECK --interval=1m30s --timeout=3s --start-period=1.5s --retries=3 CMD [\"x\"]")
    assert (h.interval, h.timeout, h.start_period, h.retries, h.test) == (
        90 * 10**9, 3 * 10**9, 1_500_000_000, 3, ("CMD", "x"),
    )  # fmt: skip
    assert one("HEALTHCHECK NONE").test == ("NONE",)
    with pytest.raises(DockerfileError, match="--retries cannot be negative"):
        one("HEALTHCHECK --retries=-1 CMD true")
    with pytest.raises(DockerfileError, match="unknown flag: --intervall"):
        one("HEALTHCHECK --intervall=5s CMD true")


def test_run_flags_used() -> None:
    instr = one(CASES["run_flags_used"]["dockerfile"])
    assert list(instr.flags_used) == CASES["run_flags_used"]["flags_used"]
    assert instr.mounts == ("type=tmpfs,target=/foo/",)


@pytest.mark.parametrize("case", CASES["copy_heredoc"], ids=lambda c: c["dockerfile"])
def test_copy_heredoc_sources_and_dest(case: dict) -> None:
    instr = one(case["dockerfile"])
    assert isinstance(instr, CopyInstruction)
    want = case["sources_and_dest"]
    assert instr.dest == want["DestPath"]
    assert list(instr.sources) == want["SourcePaths"]
    assert [{"Path": c.path, "Data": c.data, "Expand": c.expand} for c in instr.contents] == want[
        "SourceContents"
    ]


@pytest.mark.parametrize("case", CASES["run_heredoc"], ids=lambda c: c["dockerfile"])
def test_run_heredoc(case: dict) -> None:
    instr = one(case["dockerfile"])
    assert isinstance(instr, RunInstruction)
    assert instr.prepend_shell == case["prepend_shell"]
    assert instr.json_form == (not case["prepend_shell"])
    assert list(instr.command) == case["cmdline"]
    assert [{"Name": h.name, "Data": h.content, "Chomp": h.chomp} for h in instr.heredocs] == case["files"]


def test_doc_comments() -> None:
    data = CASES["comments_detection"]
    df = parse_dockerfile(data["dockerfile"])
    exp = data["expected"]
    assert df.stages[0].doc_comment == exp["stage0.DocComment"]
    meta = df.meta_args[0].args[0]
    assert (meta.key, meta.doc_comment) == (exp["meta_arg0"]["Key"], exp["meta_arg0"]["DocComment"])
    cmd0, cmd1 = df.stages[0].instructions
    assert isinstance(cmd0, ArgInstruction) and isinstance(cmd1, ArgInstruction)
    for arg, key in ((cmd0.args[0], "stage0.cmd0.arg0"), (cmd1.args[0], "stage0.cmd1.arg0"), (cmd1.args[1], "stage0.cmd1.arg1")):
        assert (arg.key, arg.doc_comment) == (exp[key]["Key"], exp[key]["DocComment"])


_BFLAG_KIND = {"string": "string", "bool": "bool"}


@pytest.mark.parametrize("case", CASES["bflags"]["cases"], ids=str)
def test_bflags(case: dict) -> None:
    spec = {name: kind for name, (kind, _default) in case.get("flags", {}).items()}
    defaults = {name: default for name, (_kind, default) in case.get("flags", {}).items()}
    if not case["ok"]:
        with pytest.raises(DockerfileError):
            try:
                parse_flags(case["args"], spec, defaults)
            except Exception as exc:  # the internal error type becomes a DockerfileError at nodes
                raise DockerfileError(str(exc)) from None
        return
    values, used = parse_flags(case["args"], spec, defaults)
    for name, want in case.get("values", {}).items():
        got = values[name]
        assert (got == "true") if isinstance(want, bool) and want else got == (
            "false" if want is False else want
        )
    if "used" in case:
        assert sorted(used) == sorted(case["used"])
    if "used_sorted" in case:
        assert sorted(used) == case["used_sorted"]


# --- our own ---------------------------------------------------------------------------------

NODE_APP = """\
# syntax=docker/dockerfile:1
ARG NODE=22
FROM node:${NODE} AS Build
WORKDIR /app
COPY --chown=node:node --chmod=644 package*.json ./
RUN --mount=type=cache,target=/root/.npm --network=none npm ci
COPY . .
RUN npm run build

FROM nginx:1.27-alpine
COPY --from=build /app/dist /usr/share/nginx/html
EXPOSE 80
CMD ["nginx", "-g", "daemon off;"]
"""


def test_stages_and_meta_args() -> None:
    df = parse_dockerfile(NODE_APP)
    assert df.directives == (("syntax", "docker/dockerfile:1"),)
    assert [a.args[0].key for a in df.meta_args] == ["NODE"]
    assert [(s.index, s.name, s.base) for s in df.stages] == [
        (0, "build", "node:${NODE}"),
        (1, None, "nginx:1.27-alpine"),
    ]
    build, final = df.stages
    assert (build.span.line, build.span.end_line) == (3, 8)
    copy = final.instructions[0]
    assert isinstance(copy, CopyInstruction) and copy.from_ == "build"
    assert df.stage("BUILD") is build and df.stage("1") is final
    first_copy = build.instructions[1]
    assert isinstance(first_copy, CopyInstruction)
    assert (first_copy.chown, first_copy.chmod, first_copy.sources, first_copy.dest) == (
        "node:node", "644", ("package*.json",), "./",
    )  # fmt: skip
    run = build.instructions[2]
    assert isinstance(run, RunInstruction)
    assert run.network == "none" and run.mounts == ("type=cache,target=/root/.npm",)
    cmd = final.instructions[-1]
    assert isinstance(cmd, CmdInstruction) and cmd.json_form and cmd.command == ("nginx", "-g", "daemon off;")


def test_span_does_not_affect_equality() -> None:
    a = parse_dockerfile("FROM x\nRUN echo hi\n").stages[0].instructions[0]
    b = parse_dockerfile("FROM x\n\n\n# moved\nRUN echo hi\n").stages[0].instructions[0]
    assert a == b and a.span.line != b.span.line
    assert hash(a) == hash(b)


def test_case_insensitive_keywords_and_from_as() -> None:
    df = parse_dockerfile("from alpine as Base\nrun echo\nFrom base\n")
    assert df.stages[0].name == "base"
    assert isinstance(df.stages[0].instructions[0], RunInstruction)
    with pytest.raises(DockerfileError, match="invalid name for build stage"):
        parse_dockerfile("FROM alpine AS 1abc\n")
    with pytest.raises(DockerfileError, match="FROM requires either one or three arguments"):
        parse_dockerfile("FROM alpine AS\n")


def test_add_flags() -> None:
    instr = one("ADD --checksum=sha256:abc --keep-git-dir --unpack=false --exclude=*.md --link a b")
    assert isinstance(instr, AddInstruction)
    assert (instr.checksum, instr.keep_git_dir, instr.unpack, instr.exclude, instr.link) == (
        "sha256:abc", True, False, ("*.md",), True,
    )  # fmt: skip
    assert one("ADD a b").keep_git_dir is None
    with pytest.raises(DockerfileError, match="unknown flag: --from"):
        one("ADD --from=x a b")
    with pytest.raises(DockerfileError, match="unknown flag: --parents"):
        one("ADD --parents a b")


def test_copy_flags() -> None:
    instr = one("COPY --parents --exclude=a --exclude=b --link=false x y")
    assert (instr.parents, instr.exclude, instr.link) == (True, ("a", "b"), False)
    with pytest.raises(DockerfileError, match="duplicate flag specified: --from"):
        one("COPY --from=a --from=b x y")
    with pytest.raises(DockerfileError, match="missing a value on flag: --from"):
        one("COPY --from x y")
    with pytest.raises(DockerfileError, match="expecting boolean value for flag --link, not: maybe"):
        one("COPY --link=maybe x y")
    with pytest.raises(DockerfileError, match=r"unknown flag: --chowm \(did you mean chown\?\)"):
        one("COPY --chowm=1 x y")
    with pytest.raises(DockerfileError, match="unknown flag: --checksum"):
        one("COPY --checksum=x a b")


def test_unknown_flags_on_every_instruction() -> None:
    for text in ("FROM --foo=1 x", "RUN --foo echo", "ENV --foo a=b", "WORKDIR --foo /", "USER --foo x",
                 "CMD --foo x", "ENTRYPOINT --foo x", "LABEL --foo a=b", "EXPOSE --foo 80",
                 "VOLUME --foo /v", "SHELL --foo [\"sh\"]", "ONBUILD --foo RUN x"):  # fmt: skip
        with pytest.raises(DockerfileError, match="unknown flag: --foo"):
            one(text)


def test_arg_and_stopsignal_ignore_flags_like_buildkit() -> None:
    # BuildKit's parseArg and parseStopSignal never call flags.Parse(), so flags pass unchecked.
    assert one("ARG --foo x").args[0].key == "x"
    assert one("STOPSIGNAL --foo SIGTERM").signal == "SIGTERM"


def test_run_security_and_network() -> None:
    assert one("RUN --security=insecure x").security == "insecure"
    with pytest.raises(DockerfileError, match='security "bad" is not valid'):
        one("RUN --security=bad x")
    assert one("RUN --network=host x").network == "host"


def test_env_forms() -> None:
    assert one("ENV A 1 2").env == (KeyValue(key="A", value="1 2", no_delim=True),)
    assert one('ENV A=1 B="two words"').env == (
        KeyValue(key="A", value="1"),
        KeyValue(key="B", value='"two words"'),
    )
    with pytest.raises(DockerfileError, match="can't find = in"):
        one("ENV A=1 B")


def test_onbuild_holds_trigger() -> None:
    instr = one("ONBUILD COPY --from=x a b")
    assert isinstance(instr, OnbuildInstruction)
    assert instr.expression == "COPY --from=x a b"
    assert isinstance(instr.trigger, CopyInstruction) and instr.trigger.from_ == "x"
    tree = parse("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\n")
    ob = parse_instruction(tree.children[1])
    assert isinstance(ob, OnbuildInstruction)
    assert ob.expression == "RUN <<EOF\necho hi\nEOF"
    assert isinstance(ob.trigger, RunInstruction) and ob.trigger.heredocs[0].content == "echo hi\n"
    # the stored expression parses back to the same trigger
    again = parse_instruction_line(ob.expression)
    assert again == ob.trigger
    with pytest.raises(DockerfileError, match="MAINTAINER isn't allowed as an ONBUILD trigger"):
        one("ONBUILD MAINTAINER me")


def test_shell_and_entrypoint() -> None:
    sh = one('SHELL ["/bin/bash", "-c"]')
    assert isinstance(sh, ShellInstruction) and sh.shell == ("/bin/bash", "-c")
    with pytest.raises(DockerfileError, match="SHELL requires the arguments to be in JSON form"):
        one("SHELL /bin/bash -c")
    ep = one("ENTRYPOINT []")
    assert isinstance(ep, EntrypointInstruction) and ep.command == () and ep.json_form
    assert one("ENTRYPOINT exec foo").command == ("exec foo",)


def test_no_build_stage() -> None:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile("ARG A\nRUN echo\n")
    assert str(info.value) == "Dockerfile:2: no build stage in current context"


def test_expand() -> None:
    df = parse_dockerfile(
        "ARG V=1\nFROM --platform=$P img:$V AS s\nENV ${K}=${V:-x}\nCOPY --chown=$U --from=$S $SRC /d/$V\n"
        "WORKDIR /w/$V\nEXPOSE $PORTS\nRUN echo $V\nUSER ${U}\nLABEL l=$V\n"
    )
    env = {"P": "linux/amd64", "V": "2", "K": "KEY", "U": "app", "S": "s", "SRC": "a.txt", "PORTS": "80 443"}
    frm = expand(df.stages[0].from_, env)
    assert isinstance(frm, FromInstruction) and (frm.base, frm.platform) == ("img:2", "linux/amd64")
    got = [expand(i, env) for i in df.stages[0].instructions]
    assert got[0].env == (KeyValue(key="KEY", value="2"),)
    # --from is never expanded (BuildKit's CopyCommand.Expand leaves it; the stage graph refuses a variable)
    assert (got[1].chown, got[1].from_, got[1].sources, got[1].dest) == ("app", "$S", ("a.txt",), "/d/2")
    assert got[2].path == "/w/2"
    assert got[3].ports == ("80", "443")
    assert got[4].command == ("echo $V",)  # the shell expands RUN, not the front end
    assert got[5].user == "app"
    assert got[6].labels == (KeyValue(key="l", value="2"),)
    # the original stays unexpanded
    assert df.stages[0].instructions[2].path == "/w/$V"


def test_expand_error_carries_span() -> None:
    df = parse_dockerfile("FROM x\n\nWORKDIR ${DIR:?set DIR}\n")
    with pytest.raises(ExpansionError) as info:
        expand(df.stages[0].instructions[0], {})
    assert str(info.value) == 'Dockerfile:3: failed to process "${DIR:?set DIR}": DIR: set DIR'


def test_expand_backtick_escape() -> None:
    df = parse_dockerfile("# escape=`\nFROM x\nWORKDIR C:`$V\n")
    assert df.escape == "`"
    assert expand(df.stages[0].instructions[0], {"V": "no"}, df.escape).path == "C:$V"


def test_expand_heredoc_keeps_quotes() -> None:
    assert expand_heredoc("echo '$A' \"$B\"\n", {"A": "1", "B": "2"}) == "echo '1' \"2\"\n"
