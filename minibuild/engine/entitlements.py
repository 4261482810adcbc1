"""Entitlements: the privileges a Dockerfile may use only when the command line grants them (BuildKit's --allow)."""

from __future__ import annotations

from collections.abc import Iterable

from minibuild.dockerfile import Instruction, RunInstruction
from minibuild.errors import ConfigError, PlanError

NETWORK_HOST = "network.host"
KNOWN: tuple[str, ...] = (NETWORK_HOST,)
_USED_BY = {NETWORK_HOST: "RUN --network=host"}


def parse_allow(values: Iterable[str]) -> frozenset[str]:
    """The grants of ``--allow`` (repeatable; a value may also list several, comma-separated, as buildx takes
    them). An unknown name is a ConfigError, so a typo never silently grants nothing."""
    granted: set[str] = set()
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if name not in KNOWN:
                raise ConfigError(f"invalid entitlement {name!r} for --allow: minibuild knows {', '.join(KNOWN)}")
            granted.add(name)
    return frozenset(granted)


def needed(instr: Instruction) -> str | None:
    """The entitlement ``instr`` needs, or None: ``RUN --network=host`` needs network.host (``none`` and
    ``default`` need nothing)."""
    if isinstance(instr, RunInstruction) and instr.network == "host":
        return NETWORK_HOST
    return None


def check(instructions: Iterable[Instruction], granted: frozenset[str]) -> None:
    """Raise PlanError (with the instruction's line) for the first instruction needing an entitlement that was
    not granted; BuildKit refuses such a build before running any step, with "network.host is not allowed"."""
    for instr in instructions:
        name = needed(instr)
        if name is not None and name not in granted:
            raise PlanError(f"{name} is not allowed: {_USED_BY[name]} needs the grant --allow {name} on the "
                            f"command line (as docker buildx build --allow {name})", span=instr.span)
