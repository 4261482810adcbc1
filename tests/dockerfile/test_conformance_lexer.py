"""BuildKit's shell-lexer tables (envVarTest, wordsTest, lex_test.go) through expand_word(s).

envVarTest rows marked W (Windows only: case-insensitive env names) are skipped: minibuild targets
Unix, where BuildKit itself runs only the A and U rows.  Nothing else is skipped.
"""

from __future__ import annotations

import pytest

from minibuild.dockerfile import ExpansionError, ShellLexer, expand_word, expand_words

from .conftest import SHELL, derived

ENV_VAR_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _env_var_rows() -> list:
    rows = []
    for lineno, line in enumerate((SHELL / "envVarTest").read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split("|")]
        assert len(fields) == 3, line
        marks = [pytest.mark.skip(reason="Windows-only row (case-insensitive env names)")] if fields[0] == "W" else []
        rows.append(pytest.param(fields[0], fields[1], fields[2], id=f"L{lineno}", marks=marks))
    return rows


ENV_VAR_ROWS = _env_var_rows()


def test_env_var_table_size() -> None:
    assert len(ENV_VAR_ROWS) == 230
    assert sum(1 for p in ENV_VAR_ROWS if not p.marks) == 228


@pytest.mark.parametrize(("platform", "source", "expected"), ENV_VAR_ROWS)
def test_env_var(platform: str, source: str, expected: str) -> None:
    if expected == "error":
        with pytest.raises(ExpansionError):
            expand_word(source, ENV_VAR_ENV)
    else:
        assert expand_word(source, ENV_VAR_ENV) == expected


def test_env_var_derived_agrees_with_file() -> None:
    data = derived("envVarTest.json")
    assert data["env"] == ENV_VAR_ENV
    got = [(p.values[0], p.values[1]) for p in ENV_VAR_ROWS]
    assert got == [(c["platform"], c["input"]) for c in data["cases"]]


def _env_slice(entries: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        env[key] = value
    return env


def _words_rows() -> list:
    rows = []
    envs: list[str] = []
    for lineno, line in enumerate((SHELL / "wordsTest").read_text(encoding="utf-8").split("\n"), 1):
        line = line.rstrip("\r")
        if line.startswith("#") or line == "":
            continue
        if line.startswith("ENV "):
            envs.append(line[3:].lstrip(" "))
            continue
        parts = line.split("|")
        assert len(parts) == 2, line
        rows.append(
            pytest.param(parts[0].strip(), parts[1].lstrip(" ").split(","), list(envs), id=f"L{lineno}")
        )
    return rows


WORDS_ROWS = _words_rows()


def test_words_table_size() -> None:
    assert len(WORDS_ROWS) == 24


@pytest.mark.parametrize(("source", "expected", "envs"), WORDS_ROWS)
def test_words(source: str, expected: list[str], envs: list[str]) -> None:
    try:
        got = expand_words(source, _env_slice(envs))
    except ExpansionError:
        got = ["error"]
    assert got == expected


_LEX = derived("lex_go_table_cases.json")


@pytest.mark.parametrize("case", _LEX["TestProcessWithMatches"], ids=lambda c: c["input"])
def test_process_with_matches(case: dict) -> None:
    if case["expect_error"]:
        with pytest.raises(ExpansionError):
            ShellLexer().process(case["input"], case["env"])
        return
    result = ShellLexer().process(case["input"], case["env"])
    assert result.result == case["expected"]
    assert sorted(result.matched) == sorted(case["matched"])
    assert sorted(result.unmatched) == sorted(case["unmatched"])


@pytest.mark.parametrize("case", _LEX["TestShellParserMandatoryEnvVars"], ids=str)
def test_mandatory_env_vars(case: dict) -> None:
    env = _env_slice(case["env_list"])
    if case["expect_error"]:
        with pytest.raises(ExpansionError) as info:
            expand_word(case["input"], env)
        assert case["error_must_contain"] in str(info.value)
        assert str(info.value) == case["go_error_message_at_HEAD"]
    else:
        assert expand_word(case["input"], env) == case["expected"]


@pytest.mark.parametrize("case", _LEX["TestProcessWithMatchesPlatform"], ids=str)
def test_platform_words(case: dict) -> None:
    assert expand_word(case["input"], case["env"]) == case["expected"]


@pytest.mark.parametrize("case", _LEX["TestGetEnv"]["cases"], ids=str)
def test_get_env(case: dict) -> None:
    env = _env_slice(case["env_list"])
    assert (case["name"] in env) == case["note_is_set"]
    assert expand_word("$" + case["name"], env) == case["expected"]
