"""Each case built by Docker's classic builder and by minibuild must give the same image (or BuildKit's, when they differ)."""

from __future__ import annotations

import os

import pytest

from tests.conformance.conftest import ClassicResults, MinibuildStore
from tests.conformance.harness import EXECUTORS, Case, ImageResult, all_cases, check_expect, compare, minibuild_build

CASES = all_cases()
IDS = [c.name for c in CASES]
# each case with each executor (a case that leaves one out is reported as a skip with its executors_reason);
# the emulated shell's runs keep the case's name as their id
RUNS = [(c, e) for c in CASES for e in EXECUTORS]
RUN_IDS = [c.name if e == "emulate" else f"{c.name}-{e}" for c, e in RUNS]


def _header(case: Case) -> str:
    text = f"case {case.name}: {case.description}"
    if case.differs:
        text += f"\n(classic builder differs: {case.differs.reason.strip()})"
    return text


@pytest.mark.interop
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_classic_builder_baseline(case: Case, classic_results: ClassicResults) -> None:
    """The case is sane under Docker's classic builder: it builds (or fails, as stated) with the stated values."""
    result = classic_results.get(case)
    if case.fails:
        if result.error is None:
            pytest.fail(f"{_header(case)}\nthe classic builder was expected to fail but built", pytrace=False)
        if case.fails["classic_error"] not in result.error:
            pytest.fail(f"{_header(case)}\nexpected {case.fails['classic_error']!r} in:\n{result.error}", pytrace=False)
        return
    if case.differs and case.differs.classic == "fails":
        if result.error is None:
            pytest.fail(f"{_header(case)}\nthe classic builder was expected to fail but built", pytrace=False)
        if case.differs.classic_error and case.differs.classic_error not in result.error:
            pytest.fail(f"{_header(case)}\nexpected {case.differs.classic_error!r} in:\n{result.error}", pytrace=False)
        return
    if result.error is not None:
        pytest.fail(f"{_header(case)}\nDocker's classic builder failed:\n{result.error}", pytrace=False)
    expect = case.differs.classic_expect if case.differs else case.expect
    problems = check_expect(result, expect, "classic builder")
    if problems:
        pytest.fail(_header(case) + "\n" + "\n".join(problems), pytrace=False)


@pytest.mark.interop
@pytest.mark.parametrize(("case", "executor"), RUNS, ids=RUN_IDS)
def test_minibuild_matches_docker(case: Case, executor: str, classic_results: ClassicResults,
                                  minibuild_store: MinibuildStore) -> None:
    """minibuild's image, loaded into Docker, equals the classic builder's (or BuildKit's stated values)."""
    if executor not in case.executors:
        pytest.skip(f"case {case.name} is not run with --executor {executor}: {case.executors_reason}")
    if minibuild_store.load_error:
        pytest.fail(minibuild_store.load_error, pytrace=False)
    if executor == "chroot":
        from tests.support import require_root

        require_root()  # USER steps need real root under the chroot executor
    classic = classic_results.get(case)
    out = minibuild_store.workdir / f"{case.name}-{executor}.tar"
    mini = minibuild_build(classic_results.docker, minibuild_store.path, case, classic_results.context(case), out,
                           f"mbconf-minibuild-{os.getpid()}/{case.name}-{executor}:latest", executor=executor)
    out.unlink(missing_ok=True)
    if case.fails:
        if mini.error is None:
            pytest.fail(f"{_header(case)}\nminibuild was expected to fail (as the classic builder does) but built",
                        pytrace=False)
        if case.fails["minibuild_error"] not in mini.error:
            pytest.fail(f"{_header(case)}\nexpected {case.fails['minibuild_error']!r} in:\n{mini.error}", pytrace=False)
        return
    if mini.error is not None:
        pytest.fail(f"{_header(case)}\n{mini.error}", pytrace=False)
    problems = check_expect(mini, case.expect, "minibuild")
    if case.differs is None or case.differs.classic == "builds":
        if classic.error is not None:
            pytest.fail(f"{_header(case)}\nno Docker result to compare with:\n{classic.error}", pytrace=False)
        ignore_paths = case.differs.ignore_paths if case.differs else ()
        ignore_config = case.differs.ignore_config if case.differs else ()
        diff = compare(classic, mini, ignore_paths=ignore_paths, ignore_config=ignore_config)
        if diff:
            problems += ["  differences from Docker's classic builder (- docker, + minibuild):", *diff]
    if problems:
        pytest.fail(_header(case) + "\n" + "\n".join(problems), pytrace=False)


def test_enough_cases() -> None:
    """The suite keeps over 100 cases (issue 17: "the differential suite (now over 100 cases)")."""
    assert len(CASES) > 100, len(CASES)


def test_image_result_round_trips() -> None:
    r = ImageResult(fs={"a": {"type": "dir", "mode": "0755", "uid": 0, "gid": 0}}, config={"Cmd": ["sh"]})
    assert ImageResult.from_json(r.to_json()) == r
