"""BuildKit's ARG/ENV scoping: global ARGs, per-stage ARGs, --build-arg overrides, predefined args, ENV wins."""

from __future__ import annotations

import os as _os
from collections.abc import Mapping
from dataclasses import field, replace

from minibuild.dockerfile import ArgInstruction, Dockerfile
from minibuild.dockerfile.expand import ShellLexer
from minibuild.record import record

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_ARGS = frozenset(
    n for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY") for n in (base, base.lower())
)
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_arch() -> tuple[str, str]:
    """(architecture, variant) of this machine in OCI spelling."""
    machine = _os.uname().machine.lower()
    arch = _ARCH.get(machine, machine or "amd64")
    return arch, ("v7" if machine == "armv7l" else "")


def platform_args(*, target_stage: str = "", arch: str | None = None, variant: str | None = None) -> dict[str, str]:
    """The predefined platform args (TARGET* = BUILD* = this machine: minibuild builds natively)."""
    h_arch, h_variant = host_arch()
    arch = arch or h_arch
    variant = h_variant if variant is None else variant
    plat = f"linux/{arch}" + (f"/{variant}" if variant else "")
    out = {}
    for prefix in ("TARGET", "BUILD"):
        out[prefix + "PLATFORM"] = plat
        out[prefix + "OS"] = "linux"
        out[prefix + "ARCH"] = arch
        out[prefix + "VARIANT"] = variant
    out["TARGETSTAGE"] = target_stage
    return out


@record
class GlobalScope:
    """Values of the ARGs declared before the first FROM (None: declared without a value), plus predefined args."""

    values: Mapping[str, str | None]
    predefined: Mapping[str, str]
    used_build_args: frozenset[str] = frozenset()

    def from_env(self) -> dict[str, str]:
        """The environment FROM lines expand with: predefined args, then declared global ARGs."""
        env = dict(self.predefined)
        env.update({k: v for k, v in self.values.items() if v is not None})
        return env


def global_scope(df: Dockerfile, build_args: Mapping[str, str], predefined: Mapping[str, str]) -> GlobalScope:
    """Evaluate the global ARGs in order (a default may use earlier ones); --build-arg overrides."""
    lexer = ShellLexer(df.escape)
    values: dict[str, str | None] = {}
    used: set[str] = set()
    for instr in df.meta_args:
        for spec in instr.args:
            env = dict(predefined)
            env.update({k: v for k, v in values.items() if v is not None})
            if spec.key in build_args:
                values[spec.key] = build_args[spec.key]
                used.add(spec.key)
            elif spec.value is not None:
                values[spec.key] = lexer.process_word(spec.value, env, span=instr.span)
            else:
                values[spec.key] = None
    return GlobalScope(values=values, predefined=dict(predefined), used_build_args=frozenset(used))


@record
class StageScope:
    """What one stage's instructions can see: declared ARGs (name -> value) and the image ENV (ENV wins)."""

    args: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    used_build_args: frozenset[str] = field(default=frozenset())

    def word_env(self) -> dict[str, str]:
        """The environment words are expanded with: ARGs, overridden by ENV."""
        out = dict(self.args)
        out.update(dict(self.env))
        return out

    def run_env(self, build_args: Mapping[str, str] = {}) -> tuple[tuple[str, str], ...]:
        """The environment a RUN sees: the image ENV (PATH defaulted), then ARGs not shadowed by ENV, then proxy
        build args (which need no ARG), sorted by name after the ENV order is kept."""
        env = dict(self.env)
        if "PATH" not in env:
            env["PATH"] = DEFAULT_PATH
        out = list(env.items())
        for k, v in self.args:
            if k not in env:
                out.append((k, v))
                env[k] = v
        for k in sorted(build_args):
            if k in PROXY_ARGS and k not in env:
                out.append((k, build_args[k]))
        return tuple(out)

    def with_env(self, env: tuple[tuple[str, str], ...]) -> StageScope:
        return replace(self, env=env)

    def declare(self, instr: ArgInstruction, *, build_args: Mapping[str, str], global_scope: GlobalScope,
                escape: str = "\\") -> StageScope:
        """Apply ``ARG name[=default] ...`` in a stage (BuildKit's rules)."""
        lexer = ShellLexer(escape)
        args = dict(self.args)
        used = set(self.used_build_args)
        for spec in instr.args:
            env = dict(args)
            env.update(dict(self.env))
            key = lexer.process_word(spec.key, env, span=instr.span)
            if key in build_args:
                args[key] = build_args[key]
                used.add(key)
            elif spec.value is not None:
                args[key] = lexer.process_word(spec.value, env, span=instr.span)
            elif global_scope.values.get(key) is not None:
                args[key] = global_scope.values[key]  # type: ignore[assignment]
            elif key in global_scope.predefined:
                args[key] = global_scope.predefined[key]
            else:
                args.pop(key, None)
        return replace(self, args=tuple(args.items()), used_build_args=frozenset(used))


def unused_build_args(build_args: Mapping[str, str], used: set[str] | frozenset[str]) -> tuple[str, ...]:
    """Build args no ARG consumed (proxy and predefined args excepted), sorted."""
    predefined = set(platform_args())
    return tuple(sorted(k for k in build_args if k not in used and k not in PROXY_ARGS and k not in predefined))
