"""Shared paths for the Dockerfile front-end tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "buildkit"
PARSER = DATA / "frontend" / "dockerfile" / "parser"
SHELL = DATA / "frontend" / "dockerfile" / "shell"
DERIVED = DATA / "derived"


def derived(name: str) -> Any:
    """Load one of the JSON transcriptions of BuildKit's Go test tables."""
    return json.loads((DERIVED / name).read_text(encoding="utf-8"))
