"""Hypothesis-generated scripts agree between the emulated shell and real busybox sh: exit status, stdout,
stderr and the files written under /w (type, mode, owner, content, links, and the mtimes scripts set).

The scripts run in batches (one chroot per batch, see harness.run_busybox_batch): BATCH scripts per example,
so the default run compares EXAMPLES * BATCH = 1050 scripts (at least 1000 once those that never end under
busybox, such as `cat f >> f`, are left out); MINIBUILD_SH_EXAMPLES=N runs N batches instead.

Outside CI every run draws new scripts, so running the suite keeps exploring. Under MINIBUILD_REQUIRE_INTEROP=1
(what .ci/run sets) the corpus is derandomized: CI compares the same 1050 scripts on every submission, so a
landing is decided by the code and not by which scripts chance drew; a divergence found by exploring becomes a
named case in tests/sh/cases.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sh.harness import assert_batch_agrees
from tests.sh.strategies import script

BATCH = 10  # more scripts per example overflow Hypothesis's buffer for one example
EXAMPLES = int(os.environ.get("MINIBUILD_SH_EXAMPLES") or 105)
DERANDOMIZE = os.environ.get("MINIBUILD_REQUIRE_INTEROP") == "1"
COMPARED: list[int] = []


@pytest.mark.root
@settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(scripts=st.lists(script(), min_size=BATCH, max_size=BATCH))
def test_generated_scripts_agree(scripts: list[str], bb_template: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="mb-sh-agree-"))
    try:
        COMPARED.append(assert_batch_agrees(bb_template, work, scripts))
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.root
def test_the_generated_corpus_has_its_size(bb_template: Path) -> None:
    """Runs after the batches: at least 1000 scripts were compared (timed-out ones excepted)."""
    if not COMPARED:
        pytest.skip("the generated batches did not run in this session (selected alone)")
    assert sum(COMPARED) >= 1000, sum(COMPARED)
