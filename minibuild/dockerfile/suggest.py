"""Did-you-mean suggestions for unknown instructions and flags (BuildKit's util/suggest)."""

from __future__ import annotations

from collections.abc import Iterable


def levenshtein(a: str, b: str) -> int:
    """Edit distance between two strings (insert, delete, substitute: cost 1 each)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _match_case(value: str, original: str) -> str:
    if original == original.lower():
        return value.lower()
    if original == original.upper():
        return value.upper()
    return value


def search(value: str, options: Iterable[str], *, case_sensitive: bool) -> str | None:
    """The closest option at distance < 3, or None (also None when ``value`` is an option)."""
    probe = value if case_sensitive else value.lower()
    best: str | None = None
    best_distance = 3
    for option in sorted(options):
        candidate = option if case_sensitive else option.lower()
        if candidate == probe:
            return None
        distance = levenshtein(probe, candidate)
        if distance < best_distance:
            best = candidate if case_sensitive else _match_case(candidate, value)
            best_distance = distance
    return best


def with_suggestion(message: str, value: str, options: Iterable[str], *, case_sensitive: bool) -> str:
    """``message`` plus `` (did you mean X?)`` when a close option exists."""
    match = search(value, options, case_sensitive=case_sensitive)
    return f"{message} (did you mean {match}?)" if match else message
