"""The lexer's shortcut for words with nothing to expand gives what the full BuildKit lexer gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from minibuild.dockerfile.expand import _EOF, ShellLexer, _ShellWord
from minibuild.dockerfile.godump import GO_SPACE

# plain letters, every Go space, characters Python (but not Go) treats as spaces, a BOM, and the specials
ALPHABET = st.sampled_from(["a", "b", "/", ".", "-", "*", "=", "\x1c", "\x1f", "\ufeff", "é", "$", "<", "'", '"',
                            "\\", "`", "{", "}", *sorted(GO_SPACE)])


def _full_lexer(lexer: ShellLexer, word: str, env: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    sw = _ShellWord(lexer, word, env)
    result, words = sw.process_stop_on(_EOF, lexer.raw_escapes)
    return result, tuple(words)


@given(st.lists(ALPHABET, max_size=12).map("".join), st.sampled_from(["\\", "`"]))
def test_shortcut_agrees_with_the_full_lexer(word: str, escape: str) -> None:
    lexer = ShellLexer(escape)
    env = {"a": "x y"}
    try:
        expected = _full_lexer(lexer, word, env)
    except Exception:  # noqa: BLE001 - a failing word must not take the shortcut either
        assert any(c in word for c in "$<'\"\ufeff" + escape)
        return
    got = lexer.process(word, env)
    assert (got.result, got.words) == expected


def test_plain_words_split_at_go_spaces_only() -> None:
    got = ShellLexer("\\").process("a\x1cb \u00a0c\td", {})
    assert got.words == ("a\x1cb", "c", "d") and got.result == "a\x1cb \u00a0c\td"
