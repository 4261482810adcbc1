"""Cache explanations (StepResult.reason, --explain, JSON `reason`) and `minibuild plan` predicting a build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minibuild.api import build, plan
from minibuild.executors.executor import FakeExecutor
from tests.engine.engine_support import run_build, write_context

NODE_NGINX = Path(__file__).resolve().parents[2] / "examples" / "node-nginx"


@pytest.fixture(autouse=True)
def _small_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0.02")


def _store_files(store: Path) -> set[str]:
    return {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file() and "tmp" not in p.parts
            and p.name not in ("lock", "store.lock")}


def _misses(steps) -> set[tuple[str, int, str]]:  # type: ignore[no-untyped-def]
    return {(s.stage, s.index, s.instruction) for s in steps if not s.cached}


def _reason(steps, instruction: str) -> str:  # type: ignore[no-untyped-def]
    [s] = [s for s in steps if s.instruction == instruction]
    return str(s.reason)


def test_node_nginx_source_edit_plan_predicts_the_build_and_reasons_tell_own_change_from_cascade(
        tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    shutil.copytree(NODE_NGINX, ctx)
    store = tmp_path / "s"
    first = build(ctx, store=store)
    assert all(s.reason == "MISS: never built" for s in first.steps if s.index > 0)
    app = ctx / "src" / "App.jsx"
    app.write_text(app.read_text() + "\n// one edit\n")
    before = _store_files(store)
    predicted = plan(ctx, store=store)
    assert _store_files(store) == before  # plan wrote nothing
    real = build(ctx, store=store)
    expected = {("build", 4, "COPY . ."), ("build", 5, "RUN npm run build"),
                ("stage-1", 2, "COPY --from=build /app/dist /usr/share/nginx/html"),
                ("stage-1", 3, "EXPOSE 80"), ("stage-1", 4, 'CMD ["nginx", "-g", "daemon off;"]')}
    assert _misses(real.steps) == expected
    assert _misses(predicted.steps) == expected
    assert [(s.stage, s.index) for s in predicted.steps] == [(s.stage, s.index) for s in real.steps]
    for steps in (predicted.steps, real.steps):
        copy = _reason(steps, "COPY . .")
        assert copy.startswith("MISS: src/App.jsx content changed (sha256:") and " -> sha256:" in copy
        assert "index.css" not in copy and "main.jsx" not in copy
        assert _reason(steps, "RUN npm run build") == "MISS: parent step 5/6 (COPY . .) missed"
        assert _reason(steps, "EXPOSE 80") == (
            "MISS: parent step 3/3 (COPY --from=build /app/dist /usr/share/nginx/html) missed")
        assert _reason(steps, "RUN npm ci") == "HIT"
    # the real COPY --from names what changed in the built stage's output, not a cascade
    copy_from = _reason(real.steps, "COPY --from=build /app/dist /usr/share/nginx/html")
    assert copy_from.startswith("MISS: /app/dist/") and "parent" not in copy_from
    assert "would rebuild" in _reason(predicted.steps, "COPY --from=build /app/dist /usr/share/nginx/html")
    again = plan(ctx, store=store)
    assert all(s.cached and s.reason == "HIT" for s in again.steps)


def test_node_version_build_arg_changes_the_base(tmp_path: Path) -> None:
    store = tmp_path / "s"
    build(NODE_NGINX, store=store, target="build")
    p = plan(NODE_NGINX, store=store, target="build", build_args={"NODE_VERSION": "20"})
    r = build(NODE_NGINX, store=store, target="build", build_args={"NODE_VERSION": "20"})
    # the node:20 fixture has the same files as node:22 (only its config differs), so WORKDIR and the first
    # COPY keep hitting; RUN sees the image's NODE_VERSION env and misses; plan predicts exactly that
    assert _misses(p.steps) == _misses(r.steps) == {
        ("build", 0, "FROM node:20 AS build"), ("build", 3, "RUN npm ci"), ("build", 4, "COPY . ."),
        ("build", 5, "RUN npm run build")}
    assert r.steps[0].reason == "MISS: base image node:20 was imported from its fixture"
    assert p.steps[0].reason == "MISS: base image node:20 would be imported from its fixture"
    for steps in (p.steps, r.steps):
        npm_ci = _reason(steps, "RUN npm ci")
        assert npm_ci.startswith("MISS: env NODE_VERSION 22.") and " -> 20." in npm_ci
        assert _reason(steps, "COPY . .") == "MISS: parent step 4/6 (RUN npm ci) missed"


DF = "FROM scratch\nARG V=1\nENV E=a\nCOPY a.txt /a.txt\nRUN use-it\nLABEL l=1\n"


def test_build_arg_env_instruction_and_no_cache_reasons(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a"})
    store = tmp_path / "s"
    first = run_build(ctx, store, DF)
    assert _reason(first.steps, "RUN use-it") == "MISS: never built"
    r = run_build(ctx, store, DF, build_args={"V": "2"})
    assert _reason(r.steps, "COPY a.txt /a.txt") == "HIT"
    assert _reason(r.steps, "RUN use-it") == "MISS: build arg V 1 -> 2"
    assert _reason(r.steps, "LABEL l=1") == "MISS: parent step 3/3 (RUN use-it) missed"
    r = run_build(ctx, store, DF.replace("ENV E=a", "ENV E=b"), build_args={"V": "2"})
    assert _reason(r.steps, "ENV E=b") == "MISS: instruction changed"
    assert _reason(r.steps, "RUN use-it") == "MISS: env E a -> b"
    r = run_build(ctx, store, DF.replace("RUN use-it", "RUN use-it-differently"), build_args={"V": "2"})
    assert _reason(r.steps, "RUN use-it-differently") == "MISS: instruction changed; env E b -> a"
    r = run_build(ctx, store, DF, no_cache=True)
    assert {s.reason for s in r.steps if s.index > 0} == {"MISS: --no-cache"}
    p = plan(ctx, store=store, dockerfile_text=DF, no_cache=True)
    assert {s.reason for s in p.steps if s.index > 0} == {"MISS: --no-cache"}


def test_never_built_plan_on_an_empty_store(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a"})
    p = plan(ctx, store=tmp_path / "s", dockerfile_text=DF)
    assert [s.reason for s in p.steps] == ["HIT", "MISS: never built", "MISS: never built", "MISS: never built",
                                           "MISS: parent step 2/3 (COPY a.txt /a.txt) missed",
                                           "MISS: parent step 3/3 (RUN use-it) missed"]
    r = run_build(ctx, tmp_path / "s", DF, executor=FakeExecutor())
    assert _misses(p.steps) == _misses(r.steps)


def _cli(args: list[str], store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MINIBUILD_FIXTURE_PADDING": "0"}
    return subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store), *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_cli_explain_json_reason_and_plan_json(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a", "Dockerfile": "FROM scratch\nARG V=1\nCOPY a.txt /a\n"
                                           "ENV X=$V\n"})
    store = tmp_path / "s"
    p = _cli(["plan", str(ctx), "--build-arg", "V=7", "--json"], store)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["target"] == "stage-0" and [s["status"] for s in doc["stages"]] == ["built"]
    env_step = doc["steps"][3]
    assert env_step["instruction"] == "ENV X=7" and env_step["would_run"] is True
    assert env_step["args"] == {"V": "7"} and env_step["env"]["X"] == "7"
    b = _cli(["build", str(ctx), "--build-arg", "V=7", "--progress", "plain", "--explain"], store)
    assert b.returncode == 0, b.stderr
    assert "#2 MISS: never built" in b.stderr.splitlines()  # COPY is BuildKit step 2/2 (ARG is not listed)
    (ctx / "a.txt").write_text("b")
    j = _cli(["build", str(ctx), "--build-arg", "V=7", "--progress", "json"], store)
    steps = [json.loads(line) for line in j.stderr.splitlines() if json.loads(line)["type"] == "step"]
    assert [s["reason"] for s in steps][2].startswith("MISS: a.txt content changed (sha256:")
    assert steps[3]["reason"] == "MISS: parent step 2/2 (COPY a.txt /a) missed"
    text = _cli(["plan", str(ctx), "--build-arg", "V=7"], store)
    assert text.returncode == 0 and "2 steps would hit, 0 would run (target stage-0)" in text.stdout
