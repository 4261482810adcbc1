"""Config decoding (strictness, defaults, scalars), Go compatibility helpers, report formats, command tests."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from minibuild.errors import ConfigError
from minibuild.store import Store
from minibuild.structure import parse_config, render_json, render_junit, render_text, run_structure_tests
from minibuild.structure.gocompat import GoRegexError, compile_re2, go_duration, go_expand, go_float
from minibuild.structure.runner import Summary, TestResult
from minibuild.view import ImageView
from tests.structure.imagekit import f, make_image


# ------------------------------------------------------------------------------------------- schema
def test_defaults_and_scalar_text() -> None:
    cfg = parse_config("schemaVersion: 2.0.0\nfileExistenceTests:\n- name: a\n  path: /x\n"
                       "metadataTest:\n  envVars:\n  - key: PORT\n    value: 8080\n  - key: FLAG\n    value: yes\n",
                       filename="c.yaml")
    t = cfg.file_existence_tests[0]
    assert (t.should_exist, t.uid, t.gid, t.permissions, t.is_executable_by) == (True, -1, -1, "", "")
    assert [(e.key, e.value) for e in cfg.metadata_test.env_vars] == [("PORT", "8080"), ("FLAG", "yes")]
    assert cfg.metadata_test.cmd is None and cfg.metadata_test.entrypoint is None


def test_cmd_null_vs_empty() -> None:
    assert parse_config("schemaVersion: 2.0.0\nmetadataTest:\n  cmd: []\n", filename="c.yaml").metadata_test.cmd == ()
    assert parse_config("schemaVersion: 2.0.0\nmetadataTest:\n  cmd:\n", filename="c.yaml").metadata_test.cmd is None


@pytest.mark.parametrize(("text", "message"), [
    ("fileExistenceTests: []\n", "Please provide schema version"),
    ("schemaVersion: 3.0.0\n", "Unsupported schema version: 3.0.0"),
    ("schemaVersion: 2.0.0\nfileExistenceTest: []\n", "field fileExistenceTest not found"),
    ("schemaVersion: 2.0.0\nfileExistenceTests:\n- name: a\n  path: /x\n  shouldexist: false\n", "field shouldexist"),
    ("schemaVersion: 2.0.0\nfileExistenceTests:\n- name: a\n  uid: root\n", "into int"),
    ("schemaVersion: 2.0.0\nmetadataTest:\n  user: a\n  user: b\n", 'key "user" already set'),
])
def test_strict_yaml_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, filename="c.yaml")


def test_json_is_lenient_and_case_insensitive() -> None:
    cfg = parse_config(json.dumps({"schemaVersion": "2.0.0", "FileExistenceTests": [{"Name": "a", "path": "/x",
                                   "shouldExist": False}], "unknown": 1}), filename="c.json")
    assert cfg.file_existence_tests[0].should_exist is False


def test_other_suffix_rejected() -> None:
    with pytest.raises(ConfigError, match="valid JSON or YAML"):
        parse_config("schemaVersion: 2.0.0\n", filename="c.txt")


# ------------------------------------------------------------------------------------------- Go compat
@pytest.mark.parametrize(("text", "env", "expected"), [
    ("$A/x", {"A": "1"}, "1/x"), ("${A}x", {"A": "1"}, "1x"), ("$NOPE-", {}, "-"), ("a$", {}, "a$"),
    ("${}", {}, ""), ("$$", {"$": "p"}, "p"), ("${A", {"A": "1"}, "A"), ("$1x", {"1": "o"}, "ox"),
    ("a-$-b", {}, "a-b"), ("$/", {}, "$/"),
])
def test_go_expand(text: str, env: dict[str, str], expected: str) -> None:
    assert go_expand(text, env) == expected


@pytest.mark.parametrize(("pattern", "text", "hit"), [
    ("^hello$", "hello\n", False), ("^hello$", "hello", True), ("(?m)^hello$", "hello\n", True),
    ("a\\z", "a", True), ("\\Qa.b\\E", "a.b", True), ("\\Qa.b\\E", "axb", False),
    ("[[:digit:]]+", "x42", True), ("(?<year>\\d{4})", "2024", True), ("\\x{41}", "A", True),
    ("\\d", "\u0663", False), ("[^$]x$", "ax", True),
])
def test_re2_translation(pattern: str, text: str, hit: bool) -> None:
    assert (compile_re2(pattern).search(text) is not None) is hit


@pytest.mark.parametrize("pattern", ["a(?=b)", "(?<!a)b", "(a)\\1", "a**", "a++", "(?>a)", "\\pL", "("])
def test_re2_rejects(pattern: str) -> None:
    with pytest.raises(GoRegexError):
        compile_re2(pattern)


@pytest.mark.parametrize(("ns", "text"), [(0, "0s"), (999, "999ns"), (1_500, "1.5µs"), (2_000_000, "2ms"),
                                         (1_234_567_890, "1.23456789s"), (61_000_000_000, "1m1s"),
                                         (3_600_000_000_000, "1h0m0s")])
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


def test_go_float() -> None:
    assert (go_float(0.0), go_float(0.25), go_float(1e-06), go_float(2.0)) == ("0", "0.25", "1e-06", "2")


# ------------------------------------------------------------------------------------------- reports
SUMMARY = Summary(results=(
    TestResult(name="File Existence Test: a", passed=True, duration_ns=1000, source="t.yaml"),
    TestResult(name="Command Test: b", passed=False, errors=("bad <thing> & \"x\"",), stdout="out\n",
               duration_ns=2_000_000, source="t.yaml"),
), files=("t.yaml",))


def test_json_shape() -> None:
    data = json.loads(render_json(SUMMARY))
    assert data == {"Pass": 1, "Fail": 1, "Total": 2, "Duration": 2_001_000, "Results": [
        {"Name": "File Existence Test: a", "Pass": True, "Duration": 1000},
        {"Name": "Command Test: b", "Pass": False, "Stdout": "out\n", "Errors": ["bad <thing> & \"x\""],
         "Duration": 2_000_000}]}


def test_junit_shape() -> None:
    text = render_junit(SUMMARY)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?><testsuites failures="1" tests="2" time="0.002001">')
    root = ET.fromstring(text.split("?>", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "container-structure-test.test"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["File Existence Test: a", "Command Test: b"]
    assert cases[1].findtext("failure") == 'bad <thing> & "x"' and cases[1].findtext("system-out") == "out\n"
    assert cases[0].find("failure") is None and cases[0].get("time") == "1e-06"


def test_text_report() -> None:
    text = render_text(SUMMARY)
    assert "====== Test file: t.yaml ======" in text
    assert "=== RUN: Command Test: b\n--- FAIL\nduration: 2ms\nstdout: out\n\nError: bad <thing>" in text
    assert "Passes:      1\nFailures:    1\n" in text and text.rstrip().endswith("FAIL")


# ------------------------------------------------------------------------------------------- commands (emulated)
@pytest.fixture(scope="module")
def sh_view(tmp_path_factory: pytest.TempPathFactory) -> ImageView:
    store = Store.open(tmp_path_factory.mktemp("cmd") / "store")
    image = make_image(store, [[f("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), f("bin/sh", "", 0o755),
                                f("app/greeting", "hello from the image\n")]],
                       env=["PATH=/bin", "GREETING_FILE=/app/greeting", "MODE=prod"], working_dir="/app")
    return ImageView(store, image)


def test_command_tests_with_emulated_shell(sh_view: ImageView) -> None:
    cfg = parse_config("""schemaVersion: 2.0.0
globalEnvVars:
- key: WHO
  value: world-$MODE
commandTests:
- name: cat via env
  command: cat
  args: [$GREETING_FILE]
  expectedOutput: ['hello from the image']
- name: env and workdir
  command: sh
  args: ['-c', 'echo "$WHO $LOCAL $(pwd)"; echo oops >&2; exit 3']
  envVars:
  - key: LOCAL
    value: $MODE
  expectedOutput: ['^world-prod  /app\\n\\z']
  expectedError: ['oops']
  exitCode: 3
- name: setup persists, tests are isolated
  setup: [['sh', '-c', 'echo made > /app/made']]
  command: cat
  args: [/app/made]
  expectedOutput: ['^made\\n\\z']
- name: fresh root per test
  command: sh
  args: ['-c', 'test -e /app/made && echo leaked || echo clean']
  expectedOutput: [clean]
- name: wrong exit code
  command: sh
  args: ['-c', 'exit 0']
  exitCode: 1
""", filename="c.yaml")
    summary = run_structure_tests(sh_view, [cfg])
    verdicts = {r.name: (r.passed, r.errors) for r in summary.results}
    assert verdicts["Command Test: cat via env"][0], verdicts
    # args are expanded by the runner against image env + globals before the shell sees them (upstream's
    # SubstituteEnvVars): $WHO is known, $LOCAL (a test envVar) is not and becomes "", $(pwd) is left alone
    assert verdicts["Command Test: env and workdir"][0], verdicts
    assert verdicts["Command Test: setup persists, tests are isolated"][0], verdicts
    assert verdicts["Command Test: fresh root per test"][0], verdicts
    assert verdicts["Command Test: wrong exit code"] == (False, (
        "Test 'wrong exit code' exited with incorrect error code. Expected: 1, Actual: 0",))


def test_command_validation(sh_view: ImageView) -> None:
    cfg = parse_config("schemaVersion: 2.0.0\ncommandTests:\n- name: x\n  envVars:\n  - key: A\n    value: ''\n",
                       filename="c.yaml")
    r = run_structure_tests(sh_view, [cfg]).results[0]
    assert not r.passed and "Please provide a valid command to run for test x" in r.errors
    assert "Please provide non-empty keys and values for all specified env vars" in r.errors


def test_unparseable_config_is_a_failed_result(sh_view: ImageView, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schemaVersion: 2.0.0\nnope: 1\n")
    good = tmp_path / "good.yaml"
    good.write_text("schemaVersion: 2.0.0\nfileExistenceTests:\n- name: g\n  path: /app/greeting\n")
    summary = run_structure_tests(sh_view, [bad, good])
    assert [r.passed for r in summary.results] == [False, True]
    assert summary.results[0].errors[0].startswith("error parsing config file:")
    assert not summary.ok
