"""``--executor auto``: a real program of the base runs in the chroot executor when it can run here, a stand-in (or
a missing program, or a host without root and user namespaces) in the emulated shell; the resolved name is what a
RUN's cache key holds, so emulated and chroot layers are never mixed up."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

import minibuild
from minibuild.api import plan as api_plan
from minibuild.engine.builder import BuildResult
from minibuild.errors import ConfigError
from minibuild.executors.auto import RootFiles, TreeFiles, choose, find_program, is_elf
from minibuild.executors.select import AutoExecutor, get_executor
from minibuild.fixtures import fixtures_dir
from minibuild.store import Store
from minibuild.view import ImageView
from tests.support import require

ELF_HEAD = b"\x7fELF\x02\x01\x01" + bytes(57)  # a 64-bit little-endian ELF header's first bytes
PATH = "/usr/local/bin:/usr/bin:/bin"


def _root(tmp_path: Path, files: dict[str, bytes], links: dict[str, str] = {}, mode: int = 0o755) -> Path:
    root = tmp_path / "root"
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(mode)
    for rel, target in links.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(target)
    return root


def _can() -> None:
    return None


def _cannot() -> str:
    return "the chroot executor needs root or unprivileged user namespaces, and user.max_user_namespaces is 0 " \
           "here (run as root or use --executor emulate)"


# --------------------------------------------------------------------------- the rule, on an extracted root

def test_a_fixture_placeholder_is_no_elf_and_a_real_header_is() -> None:
    placeholder = (fixtures_dir() / "busybox" / "root" / "bin" / "busybox").read_bytes()[:64]
    assert placeholder.startswith(b"\x7fELF")  # looks like a binary to a magic check alone
    assert not is_elf(placeholder)
    assert is_elf(ELF_HEAD)
    assert not is_elf(b"#!/bin/sh\n")


def test_real_shell_through_a_symlink_is_chroot_when_it_can_run(tmp_path: Path) -> None:
    root = _root(tmp_path, {"bin/busybox": ELF_HEAD}, {"bin/sh": "busybox"})
    c = choose(RootFiles(root), ("/bin/sh", "-c", "true"), PATH, problem=_can, euid=0)
    assert (c.executor, c.reason) == ("chroot", "real /bin/sh in the base; root")
    c = choose(RootFiles(root), ("/bin/sh", "-c", "true"), PATH, problem=_can, euid=1000)
    assert (c.executor, c.reason) == ("chroot", "real /bin/sh in the base; unprivileged user namespaces")


def test_real_shell_without_root_or_userns_is_emulate_and_says_why(tmp_path: Path) -> None:
    root = _root(tmp_path, {"bin/sh": ELF_HEAD})
    c = choose(RootFiles(root), ("/bin/sh", "-c", "true"), PATH, problem=_cannot, euid=1000)
    assert c.executor == "emulate"
    assert c.reason == ("real /bin/sh in the base, but the chroot executor needs root or unprivileged user "
                        "namespaces, and user.max_user_namespaces is 0 here")


def test_stand_in_or_missing_program_is_emulate(tmp_path: Path) -> None:
    root = _root(tmp_path, {"bin/sh": b"\x7fELF minibuild stand-in\n", "usr/local/bin/node": b"#!/bin/sh\n"})
    assert choose(RootFiles(root), ("/bin/sh", "-c", "x"), PATH, problem=_can).reason == "/bin/sh is a stand-in"
    c = choose(RootFiles(root), ("node", "x.js"), PATH, problem=_can)
    assert (c.executor, c.reason) == ("emulate", "/usr/local/bin/node is a stand-in")
    c = choose(RootFiles(root), ("/bin/bash", "-c", "x"), PATH, problem=_can)
    assert (c.executor, c.reason) == ("emulate", "no /bin/bash in the base")


def test_exec_form_searches_path_and_needs_the_execute_bit(tmp_path: Path) -> None:
    root = _root(tmp_path, {"usr/bin/tool": ELF_HEAD, "usr/local/bin/tool": ELF_HEAD}, mode=0o644)
    (root / "usr/bin/tool").chmod(0o755)
    found = find_program(RootFiles(root), "tool", PATH)
    assert found is not None and (found.path, found.real) == ("/usr/bin/tool", True)  # /usr/local's is not +x
    assert find_program(RootFiles(root), "tool", "/nowhere") is None
    assert find_program(RootFiles(root), "/usr/local/bin/tool", "") is not None  # a path needs no +x bit to be found


def test_a_link_out_of_the_root_stays_in_it(tmp_path: Path) -> None:
    outside = tmp_path / "host-sh"
    outside.write_bytes(ELF_HEAD)
    root = _root(tmp_path, {}, {"bin/sh": str(outside)})
    assert choose(RootFiles(root), ("/bin/sh",), PATH, problem=_can).reason == "no /bin/sh in the base"


# --------------------------------------------------------------------------- the rule, on layer headers

def _build(ctx: Path, text: str, store: Store, executor: Any, events: list[dict[str, Any]] | None = None,
           target: str | None = None) -> BuildResult:
    (ctx / "Dockerfile").write_text(text)
    return minibuild.build(ctx, store=store, executor=executor, target=target,
                           progress=events.append if events is not None else None)


def _busybox_ctx(tmp_path: Path) -> Path:
    busybox = Path("/bin/busybox")
    require(busybox.exists() and is_elf(busybox.read_bytes()[:64]), "no real busybox binary at /bin/busybox")
    ctx = tmp_path / "ctx"
    (ctx / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy2(busybox, ctx / "rootfs" / "bin" / "busybox")
    for applet in ("sh", "echo", "cat"):
        (ctx / "rootfs" / "bin" / applet).symlink_to("busybox")
    return ctx


def test_tree_files_read_the_program_from_layer_headers(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    ctx = _busybox_ctx(tmp_path)
    real = _build(ctx, "FROM scratch\nCOPY rootfs/ /\n", store, "emulate").image
    stand_in = _build(ctx, "FROM busybox\nLABEL x=1\n", store, "emulate").image
    c = choose(TreeFiles.of_image(store.blobs, real), ("/bin/sh", "-c", "x"), PATH, problem=_can, euid=0)
    assert (c.executor, c.reason) == ("chroot", "real /bin/sh in the base; root")
    c = choose(TreeFiles.of_image(store.blobs, stand_in), ("/bin/sh", "-c", "x"), PATH, problem=_can)
    assert (c.executor, c.reason) == ("emulate", "/bin/sh is a stand-in")


# --------------------------------------------------------------------------- builds

def _chroot_here() -> None:
    from minibuild.executors.chroot import platform_problem

    require(sys.platform.startswith("linux") and platform_problem() is None,
            f"chroot executor unavailable: {platform_problem()}")


def _run_steps(result: BuildResult) -> list[tuple[bool, str]]:
    return [(s.cached, s.reason) for s in result.steps if s.instruction.startswith("RUN")]


REAL = "FROM scratch\nCOPY rootfs/ /\nRUN echo built > /out\n"


def test_the_key_holds_the_resolved_executor(tmp_path: Path) -> None:
    _chroot_here()
    store = Store.open(tmp_path / "store")
    ctx = _busybox_ctx(tmp_path)
    assert _run_steps(_build(ctx, REAL, store, "emulate")) == [(False, "MISS: never built")]
    chroot = _run_steps(_build(ctx, REAL, store, "chroot"))
    assert chroot[0][0] is False and "executor" in chroot[0][1]  # an emulated layer is not reused for chroot
    events: list[dict[str, Any]] = []
    auto = _build(ctx, REAL, store, "auto", events)
    assert _run_steps(auto) == [(True, "HIT")]  # auto resolved to chroot: the explicit chroot build's record
    picked = [e for e in events if e["type"] == "executor"]
    assert [(e["stage"], e["executor"], e["reason"]) for e in picked] == [
        ("stage-0", "chroot", f"real /bin/sh in the base; {'root' if os.geteuid() == 0 else 'unprivileged user namespaces'}")]
    step = next(e for e in events if e["type"] == "step" and e["instruction"].startswith("RUN"))
    assert picked[0]["n"] == step["n"]
    assert ImageView(store, auto.image).read("/out") == b"built\n"
    (ctx / "Dockerfile").write_text(REAL)
    assert all(s.cached for s in api_plan(ctx, store=store).steps)  # plan resolves auto as build does


def test_plan_before_a_fixture_base_is_imported_emulates(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo hi\n")
    steps = api_plan(ctx, store=tmp_path / "fresh").steps
    assert [s.cached for s in steps] == [False, False]


def test_auto_on_a_stand_in_base_hits_an_emulated_build(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    text = "FROM busybox\nRUN echo hi > /hi\n"
    _build(ctx, text, store, "emulate")
    events: list[dict[str, Any]] = []
    assert _run_steps(_build(ctx, text, store, "auto", events)) == [(True, "HIT")]
    assert [(e["executor"], e["reason"]) for e in events if e["type"] == "executor"] == [
        ("emulate", "/bin/sh is a stand-in")]


def test_the_choice_is_per_stage_and_only_for_stages_with_run(tmp_path: Path) -> None:
    _chroot_here()
    store = Store.open(tmp_path / "store")
    ctx = _busybox_ctx(tmp_path)
    text = ("FROM scratch AS build\nCOPY rootfs/ /\nRUN echo real > /out\n"
            "FROM busybox AS web\nCOPY --from=build /out /out\nRUN cat /out > /copy\n"
            "FROM busybox\nCOPY --from=web /copy /copy\n")
    events: list[dict[str, Any]] = []
    _build(ctx, text, store, "auto", events)
    assert [(e["stage"], e["executor"]) for e in events if e["type"] == "executor"] == [
        ("build", "chroot"), ("web", "emulate")]


def test_without_root_or_userns_auto_emulates_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import minibuild.executors.chroot as chroot

    monkeypatch.setattr(chroot, "platform_problem", _cannot)
    store = Store.open(tmp_path / "store")
    ctx = _busybox_ctx(tmp_path)
    events: list[dict[str, Any]] = []
    result = _build(ctx, REAL, store, "auto", events)
    assert [(e["executor"], e["reason"].split(", but ")[0]) for e in events if e["type"] == "executor"] == [
        ("emulate", "real /bin/sh in the base")]
    assert "user.max_user_namespaces is 0" in next(e["reason"] for e in events if e["type"] == "executor")
    assert _run_steps(_build(ctx, REAL, store, "emulate")) == [(True, "HIT")]  # keyed as the emulate build
    assert result.image is not None


def test_an_explicit_executor_is_not_announced(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    events: list[dict[str, Any]] = []
    _build(ctx, "FROM busybox\nRUN echo hi > /hi\n", store, "emulate", events)
    assert [e for e in events if e["type"] == "executor"] == []


def test_get_executor_auto_picks_per_command(tmp_path: Path) -> None:
    from minibuild.executors.executor import RunRequest

    ex = get_executor("auto")
    assert isinstance(ex, AutoExecutor) and ex.name == "auto"
    root = _root(tmp_path, {"bin/sh": b"\x7fELF minibuild stand-in\n"})
    (root / "tmp").mkdir()
    res = ex.run(RunRequest(root=root, argv=("/bin/sh", "-c", "echo emulated > /tmp/x"), env=(("PATH", PATH),)))
    assert res.exit_code == 0, res.stderr
    assert (root / "tmp" / "x").read_text() == "emulated\n"
    with pytest.raises(ConfigError, match="known executors: auto, emulate, chroot"):
        get_executor("docker")


def test_the_memo_answers_a_known_chain_without_reading_the_files(tmp_path: Path) -> None:
    from minibuild.executors.auto import MemoFiles

    root = _root(tmp_path, {"bin/busybox": ELF_HEAD}, {"bin/sh": "busybox"})
    made: list[int] = []

    def files() -> RootFiles:
        made.append(1)
        return RootFiles(root)

    memo_path = tmp_path / "program-heads.json"
    first = MemoFiles("chain-a", files, memo_path)
    assert choose(first, ("/bin/sh", "-c", "x"), PATH, problem=_can, euid=0).executor == "chroot"
    first.save()
    assert made == [1]
    shutil.rmtree(root)  # the memo alone answers now
    again = MemoFiles("chain-a", files, memo_path)
    assert choose(again, ("/bin/sh", "-c", "x"), PATH, problem=_can, euid=0).executor == "chroot"
    assert made == [1]
    other = MemoFiles("chain-b", files, memo_path)  # another chain of layers is read
    assert choose(other, ("/bin/sh", "-c", "x"), PATH, problem=_can).reason == "no /bin/sh in the base"
    assert made == [1, 1]
    memo_path.write_text('{"chain-a 0 /bin/sh": "zz"}')  # damaged: read again, never trusted
    assert MemoFiles("chain-a", files, memo_path).head("/bin/sh", executable=False) is None
    memo_path.write_text("not json")
    assert MemoFiles("chain-a", files, memo_path).memo == {}


def test_a_build_remembers_its_base_s_program(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _build(ctx, "FROM busybox\nRUN echo hi > /hi\n", store, "auto")
    memo = json.loads((tmp_path / "store" / ".minibuild" / "program-heads.json").read_text())
    assert [k.split(" ", 1)[1] for k in memo] == ["0 /bin/sh"]
