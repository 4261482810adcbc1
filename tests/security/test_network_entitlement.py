"""RUN --network=host needs the command line's grant (BuildKit's network.host entitlement), whoever calls the builder.

A Dockerfile alone must not put a step on the host's network (host-only services, abstract UNIX sockets): without
``--allow network.host`` (``allow=["network.host"]``) the build stops before any step runs, cached or not, with
BuildKit's "network.host is not allowed" and the flag to pass. ``--network=none`` and ``default`` need no grant.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minibuild import api
from minibuild.executors.executor import FakeExecutor
from minibuild.errors import ConfigError, PlanError
from minibuild.store import Store
from tests.support import require, require_root

REFUSAL = ("Dockerfile:3: network.host is not allowed: RUN --network=host needs the grant --allow network.host on "
           "the command line (as docker buildx build --allow network.host)")
HOST_RUN = "FROM busybox\nRUN echo before > /before\nRUN --network=host echo hi > /hi\n"


def _ctx(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


@pytest.mark.parametrize("executor", ["emulate", "chroot", "fake"])
def test_network_host_without_the_grant_runs_nothing(tmp_path: Path, executor: str) -> None:
    fake = FakeExecutor()
    with pytest.raises(PlanError) as info:
        api.build(_ctx(tmp_path, HOST_RUN), store=tmp_path / "store", executor=fake if executor == "fake" else executor)
    assert str(info.value) == REFUSAL
    assert fake.requests == ()  # not even the RUN before it


def test_the_grant_lets_the_step_have_the_host_network(tmp_path: Path) -> None:
    fake = FakeExecutor()
    api.build(_ctx(tmp_path, HOST_RUN), store=tmp_path / "store", executor=fake, allow=["network.host"])
    assert [(r.argv[-1], r.network) for r in fake.requests] == [("echo before > /before", False),
                                                                 ("echo hi > /hi", True)]


def test_none_and_default_need_no_grant(tmp_path: Path) -> None:
    fake = FakeExecutor()
    df = "FROM busybox\nRUN --network=none echo a\nRUN --network=default echo b\nRUN echo c\n"
    api.build(_ctx(tmp_path, df), store=tmp_path / "store", executor=fake)
    assert [r.network for r in fake.requests] == [False, False, False]


def test_a_cached_step_still_needs_the_grant(tmp_path: Path) -> None:
    ctx, store = _ctx(tmp_path, HOST_RUN), tmp_path / "store"
    api.build(ctx, store=store, executor=FakeExecutor(), allow=["network.host"])
    fake = FakeExecutor()
    with pytest.raises(PlanError, match="network.host is not allowed"):
        api.build(ctx, store=store, executor=fake)
    assert fake.requests == ()


def test_an_onbuild_trigger_of_the_base_needs_the_grant(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    base = tmp_path / "base"
    base.mkdir()
    (base / "Dockerfile").write_text("FROM busybox\nONBUILD RUN --network=host echo pwned\n")
    api.build(base, store=store, executor=FakeExecutor(), tags=["trigger-base"])
    fake = FakeExecutor()
    with pytest.raises(PlanError, match=r"^Dockerfile:1: network.host is not allowed"):
        api.build(_ctx(tmp_path, "FROM trigger-base\nRUN echo mine\n"), store=store, executor=fake)
    assert fake.requests == ()
    api.build(tmp_path / "ctx", store=store, executor=fake, allow=["network.host"])
    assert [r.network for r in fake.requests] == [True, False]


def test_unknown_entitlement_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid entitlement 'network.hots' for --allow: minibuild knows "
                                          r"network.host"):
        api.build(_ctx(tmp_path, HOST_RUN), store=tmp_path / "store", executor=FakeExecutor(), allow=["network.hots"])


def test_plan_warns_instead(tmp_path: Path) -> None:
    result = api.plan(_ctx(tmp_path, HOST_RUN), store=tmp_path / "store")
    assert f"{REFUSAL}; a build without the grant fails" in result.warnings
    granted = api.plan(_ctx(tmp_path, HOST_RUN), store=tmp_path / "store", allow=["network.host"])
    assert not any("network.host" in w for w in granted.warnings)


def _mb(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store), *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_names_the_flag_in_one_line(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, HOST_RUN)
    res = _mb(tmp_path / "store", "build", str(ctx), "--executor", "chroot")
    assert (res.returncode, res.stderr) == (1, f"error: {REFUSAL}\n")
    ok = _mb(tmp_path / "store", "build", str(ctx), "--allow", "network.host")
    assert ok.returncode == 0, ok.stderr
    test_cmd = _mb(tmp_path / "store", "test", "--build", str(ctx), "-c", str(tmp_path / "none.yaml"))
    assert (test_cmd.returncode, test_cmd.stderr) == (1, f"error: {REFUSAL}\n")


def test_pytest_plugin_passes_the_grant(tmp_path: Path) -> None:
    from minibuild.pytest_plugin import SessionBuilds

    ctx = _ctx(tmp_path, HOST_RUN)
    builds = SessionBuilds(Store.open(tmp_path / "store"), tmp_path)
    with pytest.raises(pytest.fail.Exception, match="network.host is not allowed"):
        builds("ctx")
    built = builds("ctx", allow=["network.host"])
    assert built.read_text("/hi") == "hi\n" and built.request.allow == ("network.host",)
    assert ctx.is_dir()


def test_granted_chroot_step_sees_the_host_network(tmp_path: Path, busybox_rootfs: Path) -> None:
    require_root()
    from minibuild.executors.chroot import platform_problem

    require(platform_problem() is None, f"chroot executor unavailable: {platform_problem()}")
    host = sorted(line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:])
    require(host != ["lo"], "the host itself has no interface but lo, so the host network cannot be told apart")
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY root/ /\nRUN --network=host cat /proc/net/dev > /ifaces\n")
    shutil.copytree(busybox_rootfs, ctx / "root", symlinks=True)
    result = api.build(ctx, store=tmp_path / "store", executor="chroot", allow=["network.host"])
    from minibuild.view import ImageView

    text = ImageView(Store.open(tmp_path / "store"), result.image).read_text("/ifaces")
    assert sorted(line.split(":")[0].strip() for line in text.splitlines()[2:]) == host
