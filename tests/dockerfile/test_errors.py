"""Every kind of malformed Dockerfile gives one DockerfileError rendered ``Dockerfile:LINE: message``."""

from __future__ import annotations

import pytest

from minibuild.dockerfile import parse, parse_dockerfile
from minibuild.errors import DockerfileError

CASES = [
    ("FROM x\nRUN <<EOF\necho hi\n", "Dockerfile:2: unterminated heredoc"),
    ("FROM x\nCOPY --form=a b c\n", "Dockerfile:2: unknown flag: --form (did you mean from?)"),
    ("FROM x\nCMD [\"a\", 1]\n", "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only"),
    ("# escape=x\nFROM a\n", "Dockerfile:1: invalid escape token 'x' does not match ` or \\"),
    ("# escape=\\\n# escape=`\nFROM a\n", "Dockerfile:2: only one escape parser directive can be used"),
    ("FROM x\n\nENV PATH\n", "Dockerfile:3: ENV must have two arguments"),
    ("", "Dockerfile:1: file with no instructions"),
    ("# only\n\n# comments\n", "Dockerfile:3: file with no instructions"),
    ("FROM x\nCOPPY a b\n", "Dockerfile:2: unknown instruction: COPPY (did you mean COPY?)"),
    ("FROM x\nfrun a\n", "Dockerfile:2: unknown instruction: frun (did you mean run?)"),
    ("FROM x\nBOGUSWORD a\n", "Dockerfile:2: unknown instruction: BOGUSWORD"),
    ("RUN echo\n", "Dockerfile:1: no build stage in current context"),
    ("FROM x\nCOPY a\n", "Dockerfile:2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
    ("FROM x\nLABEL a=1 b\n", "Dockerfile:2: Syntax error - can't find = in \"b\". Must be of the form: name=value"),
    ("FROM x\nRUN \\\n  --mount=x \\\n  --oops echo\n", "Dockerfile:2: unknown flag: --oops"),
    ("FROM x\nCOPY <<EOF <<EOF2 /d\na\nEOF\n", "Dockerfile:2: unterminated heredoc"),
    # BuildKit's testMountFromError: refused when the Dockerfile is parsed, whatever the variable holds
    ("FROM busybox AS test\nRUN touch /tmp/test\nFROM busybox\nENV ttt=test\n"
     "RUN --mount=from=$ttt,type=cache,target=/tmp ls\n",
     "Dockerfile:5: 'from' doesn't support variable expansion, define alias stage instead"),
    ("FROM x\nRUN --mount=type=bind,FROM=${a}b,target=/m ls\n",
     "Dockerfile:2: 'from' doesn't support variable expansion, define alias stage instead"),
]


@pytest.mark.parametrize(("text", "message"), CASES, ids=[m for _, m in CASES])
def test_error_message(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile(text)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_error_span_covers_instruction_lines() -> None:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile("FROM x\nCOPY \\\n  --bad \\\n  a b\n")
    span = info.value.span
    assert span is not None and (span.line, span.end_line) == (2, 4)


def test_filename_in_message() -> None:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile("FROM x\nCOPY a\n", filename="app/Dockerfile.dev")
    assert str(info.value).startswith("app/Dockerfile.dev:2: COPY requires")


# --- line handling the golden files do not pin -------------------------------------------------


def test_bom_crlf_and_continuation_at_eof() -> None:
    tree = parse("\ufeffFROM a\r\nRUN echo \\\r\n  hi\r\nRUN x \\")
    assert tree.dump() == '(from "a")\n(run "echo   hi")\n(run "x")'
    assert [(c.start_line, c.end_line) for c in tree.children] == [(1, 1), (2, 3), (4, 4)]


def test_comments_and_blank_lines_inside_continuation() -> None:
    tree = parse("FROM a\nRUN a \\\n# comment\n\n  b\n")
    assert tree.dump() == '(from "a")\n(run "a   b")'
    assert len(tree.warnings) == 1


def test_backtick_escape() -> None:
    tree = parse("# escape=`\nFROM a\nRUN dir C:\\ `\n  && echo\n")
    assert tree.escape == "`"
    assert tree.dump() == '(from "a")\n(run "dir C:\\\\   && echo")'


def test_heredoc_several_and_inside_onbuild() -> None:
    tree = parse("FROM a\nONBUILD COPY <<A <<'B' /d\n1\nA\n2\nB\nRUN ok\n")
    ob = tree.children[1]
    assert [(h.name, h.expand, h.content) for h in ob.heredocs] == [("A", True, "1\n"), ("B", False, "2\n")]
    assert (ob.start_line, ob.end_line) == (2, 6)
    assert tree.children[2].start_line == 7


def test_mount_from_with_a_trailing_dollar_is_a_name() -> None:
    """Only a ``$`` followed by something is a variable to BuildKit's check."""
    df = parse_dockerfile("FROM x\nRUN --mount=from=a$,target=/m --mount=type=cache,target=$HOME ls\n")
    assert df.stages[0].instructions[0].mounts == ("from=a$,target=/m", "type=cache,target=$HOME")  # type: ignore[attr-defined]
