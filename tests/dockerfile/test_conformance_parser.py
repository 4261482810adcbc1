"""BuildKit's parser test data, run through minibuild.dockerfile.parse(...).dump().

Every upstream case runs; nothing is skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from minibuild.dockerfile import parse
from minibuild.dockerfile.source import (
    detect_syntax,
    heredocs_from_line,
    parse_directive,
    parse_heredoc_word,
    parse_words,
)
from minibuild.dockerfile.syntax import chomp_heredoc
from minibuild.errors import DockerfileError

from .conftest import PARSER, derived

POSITIVE = sorted(p for p in (PARSER / "testfiles").iterdir() if p.is_dir())
NEGATIVE = sorted(p for p in (PARSER / "testfiles-negative").iterdir() if p.is_dir())


def test_counts() -> None:
    assert len(POSITIVE) == 33
    assert len(NEGATIVE) == 4


@pytest.mark.parametrize("case", POSITIVE, ids=lambda p: p.name)
def test_golden_dump(case: Path) -> None:
    tree = parse((case / "Dockerfile").read_bytes())
    expected = (case / "result").read_bytes().decode("utf-8")
    assert tree.dump() + "\n" == expected


@pytest.mark.parametrize("case", derived("parser_testfiles.json")["positive"], ids=lambda c: c["name"])
def test_golden_dump_derived(case: dict) -> None:
    assert parse(case["dockerfile"]).dump() + "\n" == case["expected_dump"]


NEGATIVE_MESSAGES = {
    "empty_dockerfile": "file with no instructions",
    "only_comments": "file with no instructions",
    "env_no_value": "ENV must have two arguments",
    "shykes-nested-json": "when using JSON array syntax, arrays must be comprised of strings only",
}


@pytest.mark.parametrize("case", NEGATIVE, ids=lambda p: p.name)
def test_negative(case: Path) -> None:
    with pytest.raises(DockerfileError) as info:
        parse((case / "Dockerfile").read_bytes())
    assert info.value.message == NEGATIVE_MESSAGES[case.name]
    assert str(info.value).startswith("Dockerfile:")


def test_line_numbers() -> None:
    data = derived("parser_misc_cases.json")["TestParseIncludesLineNumbers"]
    tree = parse(data["dockerfile"])
    assert (tree.start_line, tree.end_line) == (
        data["expected_root"]["StartLine"],
        data["expected_root"]["EndLine"],
    )
    got = [[c.start_line, c.end_line] for c in tree.children]
    assert got == data["expected_children_start_end"]
    # the same file on disk
    tree2 = parse((PARSER / "testfile-line" / "Dockerfile").read_bytes())
    assert [[c.start_line, c.end_line] for c in tree2.children] == data["expected_children_start_end"]


def test_empty_continuation_warnings() -> None:
    data = derived("parser_misc_cases.json")["TestParseWarnsOnEmptyContinutationLine"]
    tree = parse(data["dockerfile"])
    assert len(tree.warnings) == data["expected_warning_count"]
    assert list(tree.warnings) == data["warning_shorts_at_HEAD"]
    for warning, needles in zip(tree.warnings, data["expected_warning_contains"]):
        for needle in needles:
            assert needle in warning


def test_line_too_long() -> None:
    with pytest.raises(DockerfileError, match="dockerfile line greater than max allowed size of 65535"):
        parse("FROM busybox\nRUN echo " + "a" * 65536 + "\n")
    # 65535 bytes is still fine
    parse("RUN " + "a" * (65535 - 4) + "\n")


@pytest.mark.parametrize("case", derived("parser_misc_cases.json")["TestParseWords"]["cases"], ids=str)
def test_parse_words(case: dict) -> None:
    assert parse_words(case["input"]) == case["expected"]


_JSON = derived("parser_misc_cases.json")["TestJSONArraysOfStrings"]


@pytest.mark.parametrize("case", _JSON["valid"], ids=str)
def test_json_arrays_valid(case: dict) -> None:
    node = parse("CMD " + case["input"]).children[0]
    assert node.json is True
    assert list(node.args) == case["expected"]


@pytest.mark.parametrize("text", _JSON["invalid_not_string_array"])
@pytest.mark.parametrize("keyword", ["RUN", "CMD", "ENTRYPOINT", "SHELL", "ADD", "COPY", "VOLUME"])
def test_json_arrays_not_strings(text: str, keyword: str) -> None:
    with pytest.raises(DockerfileError, match="arrays must be comprised of strings only"):
        parse(f"{keyword} {text}")


def test_directives() -> None:
    for case in derived("parser_misc_cases.json")["TestDirectives"]:
        tree = parse(case["input"] + "FROM x\n")
        assert [{"name": d.name, "value": d.value} for d in tree.directives] == case["expected"]


@pytest.mark.parametrize("case", derived("parser_misc_cases.json")["TestDetectSyntax"], ids=str)
def test_detect_syntax(case: dict) -> None:
    found = detect_syntax(case["input"])
    assert (found is not None) == case["found"]
    if found is not None:
        assert found[0] == case["ref"]
        if "cmdline" in case:
            assert found[1] == case["cmdline"]
        if "line" in case:
            assert found[2] == case["line"]


@pytest.mark.parametrize("case", derived("parser_misc_cases.json")["TestParseDirective_check"], ids=str)
def test_parse_directive_check(case: dict) -> None:
    found = parse_directive("check", case["input"])
    assert (found is not None) == case["found"]
    if found is not None:
        assert found[0] == case["ref"]
        if "cmdline" in case:
            assert found[1] == case["cmdline"]
        if "line" in case:
            assert found[2] == case["line"]


# --- heredocs -------------------------------------------------------------------------------

_HEREDOC = derived("parser_heredoc_cases.json")


def _heredoc_dicts(node_heredocs: tuple) -> list[dict]:
    return [
        {
            "Name": h.name,
            "FileDescriptor": h.file_descriptor,
            "Expand": h.expand,
            "Chomp": h.chomp,
            "Content": h.content,
        }
        for h in node_heredocs
    ]


def test_parse_extracts_heredocs() -> None:
    data = _HEREDOC["TestParseExtractsHeredoc"]
    tree = parse(data["dockerfile"])
    expected = data["expected_heredocs"]
    assert len(tree.children) == len(expected) + 1
    for child, want in zip(tree.children[1:], expected):
        got = _heredoc_dicts(child.heredocs)
        assert got == (want or []), child.original


def test_json_form_has_no_heredocs() -> None:
    tree = parse(_HEREDOC["TestParseJSONHeredoc"]["dockerfile"])
    for child in tree.children[1:4]:
        assert child.json and child.heredocs == ()


def test_chomp() -> None:
    data = _HEREDOC["TestHeredocChomp"]
    assert chomp_heredoc(data["input"]) == data["expected"]


def test_heredoc_word_helpers() -> None:
    helpers = _HEREDOC["TestParseHeredocHelpers"]
    for word in helpers["valid_name_EOF"]:
        doc = parse_heredoc_word(word)
        assert doc is not None and doc.name == "EOF", word
        d = helpers["valid_details"][word]
        assert (doc.file_descriptor, doc.expand, doc.chomp, doc.content) == (
            d["FileDescriptor"],
            d["Expand"],
            d["Chomp"],
            d["Content"],
        )
    for word in helpers["invalid_error"]:
        with pytest.raises(DockerfileError) as info:
            parse_heredoc_word(word)
        assert str(info.value) == helpers["invalid_error_messages"][word]
    for word in helpers["not_heredoc_nil"]:
        assert parse_heredoc_word(word) is None, word


@pytest.mark.parametrize("case", _HEREDOC["TestHeredocsFromLine"], ids=lambda c: c["line"])
def test_heredocs_from_line(case: dict) -> None:
    got = _heredoc_dicts(tuple(heredocs_from_line(case["line"])))
    assert got == (case["actual"] or [])
