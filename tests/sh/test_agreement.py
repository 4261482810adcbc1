"""The emulated shell agrees with real busybox sh: same exit code, stdout and resulting filesystem."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sh.cases import CASES
from tests.sh.harness import assert_agree


@pytest.mark.root
@pytest.mark.parametrize("name", sorted(CASES))
def test_agrees_with_busybox(name: str, bb_template: Path, tmp_path: Path) -> None:
    assert_agree(bb_template, tmp_path, CASES[name])
