"""The emulated shell's utility commands; importing this package registers them all in REGISTRY."""

from minibuild.sh.builtins import (archive, awk, digest, dump, fileops, find, grep, misc, sed, sort, system, text,
                                   users)  # noqa: F401
from minibuild.sh.builtins.base import REGISTRY, Ctx

__all__ = ["REGISTRY", "Ctx"]
