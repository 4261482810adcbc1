"""Hypothesis-generated scripts agree between the emulated shell and real busybox sh.

Default: 100 examples; HYPOTHESIS_PROFILE=ci runs 600.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.sh.harness import assert_agree
from tests.sh.strategies import script

EXAMPLES = 600 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 100


@pytest.mark.root
@settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=script())
def test_generated_scripts_agree(text: str, bb_template: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="mb-sh-agree-"))
    try:
        assert_agree(bb_template, work, text)
    finally:
        shutil.rmtree(work, ignore_errors=True)
