"""Hypothesis properties of the front end (small default profile: cheap examples)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from minibuild.dockerfile import expand_word, expand_words, parse, parse_dockerfile
from minibuild.errors import MinibuildError

# no specials, and no byte-order mark at the very start (Go's scanner, and so BuildKit's lexer, drops it there)
PLAIN = st.text(
    alphabet=st.characters(blacklist_characters="$'\"\\<", blacklist_categories=("Cs",)),
    max_size=40,
).filter(lambda w: not w.startswith("\ufeff"))
DOCKERFILE_ALPHABET = st.sampled_from(
    list("FROMRUNCOPYENVARGfromrun abc=-\\`#\"'[]{}$<>\t\r\n,:/") + ["\ufeff", "é", "<<EOF", "\nEOF\n", "--x=1 "]
)


@settings(max_examples=100, deadline=None)
@given(PLAIN)
@example("plain word")
@example("a\ufeff")
def test_word_without_specials_expands_to_itself(word: str) -> None:
    assert expand_word(word, {"A": "1"}) == word


@settings(max_examples=100, deadline=None)
@given(PLAIN, st.text(max_size=20))
def test_words_split_on_whitespace_only(word: str, value: str) -> None:
    from minibuild.dockerfile.godump import GO_SPACE

    pieces = "".join(" " if c in GO_SPACE else c for c in word).split(" ")
    assert expand_words(word, {"A": value}) == [p for p in pieces if p]


@settings(max_examples=200, deadline=None)
@given(st.lists(DOCKERFILE_ALPHABET, max_size=40).map("".join))
@example("FROM a\nRUN <<EOF\n")
@example("# escape=x\n")
def test_parse_raises_only_minibuild_errors(text: str) -> None:
    try:
        parse_dockerfile(text)
    except MinibuildError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(DOCKERFILE_ALPHABET, max_size=40).map("".join))
def test_dump_is_stable(text: str) -> None:
    try:
        tree = parse(text)
    except MinibuildError:
        return
    assert parse(text).dump() == tree.dump()
    assert tree == parse(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30), st.dictionaries(st.sampled_from(["A", "B", "C"]), st.text(max_size=5)))
def test_expansion_raises_only_minibuild_errors(word: str, env: dict[str, str]) -> None:
    try:
        expand_word(word, env)
        expand_words(word, env)
    except MinibuildError:
        pass
