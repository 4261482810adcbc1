"""ARG/ENV scope: global ARGs, re-declaration in stages, --build-arg overrides, ENV wins, predefined args."""

from __future__ import annotations

from minibuild.dockerfile import ArgInstruction, parse_dockerfile
from minibuild.plan.scope import DEFAULT_PATH, StageScope, global_scope, platform_args, unused_build_args


def _stage_args(text: str, build_args: dict[str, str]) -> tuple[StageScope, dict[str, str | None]]:
    df = parse_dockerfile(text)
    g = global_scope(df, build_args, platform_args())
    scope = StageScope(env=(("E", "env"),))
    for instr in df.stages[0].instructions:
        if isinstance(instr, ArgInstruction):
            scope = scope.declare(instr, build_args=build_args, global_scope=g)
    return scope, dict(g.values)


def test_global_defaults_chain_and_override() -> None:
    df = parse_dockerfile("ARG A=1\nARG B=${A}-x\nARG C\nFROM scratch\n")
    g = global_scope(df, {"A": "9"}, {})
    assert g.values == {"A": "9", "B": "9-x", "C": None}
    assert g.used_build_args == {"A"}


def test_stage_redeclaration_picks_global_value() -> None:
    scope, _ = _stage_args("ARG V=1\nFROM scratch\nARG V\nARG W=2\nARG X\n", {})
    assert dict(scope.args) == {"V": "1", "W": "2"}  # X: no default, no build arg -> not set


def test_build_arg_overrides_only_declared() -> None:
    scope, _ = _stage_args("FROM scratch\nARG W=2\n", {"W": "3", "NOPE": "x"})
    assert dict(scope.args) == {"W": "3"}
    assert unused_build_args({"W": "3", "NOPE": "x", "HTTP_PROXY": "p"}, scope.used_build_args) == ("NOPE",)


def test_env_wins_over_arg_for_words_and_run() -> None:
    scope, _ = _stage_args("FROM scratch\nARG E=arg\nARG F=f\n", {})
    assert scope.word_env()["E"] == "env"
    env = dict(scope.run_env({"HTTP_PROXY": "http://p"}))
    assert env["E"] == "env" and env["F"] == "f"
    assert env["PATH"] == DEFAULT_PATH
    assert env["HTTP_PROXY"] == "http://p"  # proxy args need no ARG


def test_predefined_args_need_declaring_in_stage() -> None:
    scope, _ = _stage_args("FROM scratch\nARG TARGETOS\n", {})
    assert dict(scope.args) == {"TARGETOS": "linux"}
    p = platform_args(target_stage="final")
    assert p["TARGETPLATFORM"].startswith("linux/") and p["TARGETSTAGE"] == "final"
    assert p["BUILDARCH"] == p["TARGETARCH"]
