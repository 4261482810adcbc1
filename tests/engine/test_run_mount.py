"""RUN --mount under both executors: bind, cache, tmpfs, secret and ssh mounts, their errors, what reaches the
layer and the cache key.

The classic builder has no RUN --mount (``the --mount option requires BuildKit``), so expected values are
BuildKit's documented behaviour (Dockerfile reference, "RUN --mount"; BuildKit's parser
``instructions/commands_runmount.go`` for the error texts): bind mounts read the context and are read-only
unless ``rw`` (whose writes are discarded), a cache mount's directory is 0755 root-owned when new and keeps its
contents across builds without being part of the key, a secret is a 0400 file at ``/run/secrets/<id>`` (or a
variable with ``env=``), and an ssh mount is the agent socket at ``/run/buildkit/ssh_agent.0`` named by
``SSH_AUTH_SOCK``. The chroot runs use a base made of Debian's static busybox (``tests.engines``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from minibuild import api
from minibuild.errors import BuildError, DockerfileError, MinibuildError
from minibuild.store import Store
from tests.support import require, require_root

EXECUTORS = ["emulate", "chroot"]


def _need(executor: str) -> None:
    if executor == "chroot":
        require(sys.platform.startswith("linux"), "the chroot executor needs Linux")
        require_root()
        from minibuild.executors.chroot import platform_problem

        require(platform_problem() is None, f"chroot executor unavailable: {platform_problem()}")


@pytest.fixture(scope="module")
def base_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.engines import make_busybox_root

    return make_busybox_root(tmp_path_factory.mktemp("bb") / "root")


class Ctx:
    """A context holding the busybox tree as ``bb/`` (the base is ``FROM scratch`` + ``COPY bb/ /``)."""

    def __init__(self, tmp: Path, base_root: Path) -> None:
        import shutil

        self.dir = tmp / "ctx"
        self.dir.mkdir()
        shutil.copytree(base_root, self.dir / "bb", symlinks=True)
        self.store = tmp / "store"
        self.tmp = tmp
        self.n = 0

    def build(self, body: str, executor: str, **kw: object) -> tuple[api.BuildResult, Path]:
        """Build ``body`` on the busybox base; the final filesystem (type=local) and the result."""
        self.n += 1
        (self.dir / "Dockerfile").write_text("FROM scratch AS bb\nCOPY bb/ /\n" + body)
        out = self.tmp / f"out{self.n}"
        result = api.build(self.dir, store=self.store, executor=executor, output=f"type=local,dest={out}",
                           **kw)  # type: ignore[arg-type]
        return result, out

    def layer_names(self, result: api.BuildResult, index: int = -1) -> list[str]:
        store = Store.open(self.store)
        layer = result.image.layers[index]
        with store.blobs.open(layer.digest) as fh, tarfile.open(fileobj=fh, mode="r|*") as tf:
            return tf.getnames()


@pytest.fixture
def ctx(tmp_path: Path, base_root: Path) -> Ctx:
    return Ctx(tmp_path, base_root)


# ------------------------------------------------------------------------------------------------ bind


@pytest.mark.parametrize("executor", EXECUTORS)
def test_bind_context_is_read_only_by_default_and_rw_writes_are_discarded(ctx: Ctx, executor: str) -> None:
    _need(executor)
    (ctx.dir / "src").mkdir()
    (ctx.dir / "src" / "a.txt").write_text("context file\n")
    result, out = ctx.build(
        "FROM bb\n"
        "RUN --mount=target=/c,source=src cat /c/a.txt > /read && (echo no > /c/a.txt; echo $? > /ro)\n"
        "RUN --mount=type=bind,source=src,target=/c,rw echo yes > /c/a.txt && cat /c/a.txt > /rw\n", executor)
    assert (out / "read").read_text() == "context file\n"
    assert (out / "ro").read_text() != "0\n"  # EROFS: the shell's redirection fails
    assert (out / "rw").read_text() == "yes\n"
    assert (ctx.dir / "src" / "a.txt").read_text() == "context file\n"  # the context never changes
    assert not (out / "c").exists()  # the mount point made for the mount is gone from the layer
    assert all(not n.lstrip("./").startswith("c") for n in ctx.layer_names(result))


@pytest.mark.parametrize("executor", EXECUTORS)
def test_bind_from_stage_reads_its_files_and_is_keyed_by_its_content(ctx: Ctx, executor: str) -> None:
    _need(executor)
    body = ("FROM bb AS data\nRUN mkdir /p && echo {v} > /p/msg\n"
            "FROM bb AS unrelated\nRUN echo never > /x\n"
            "FROM bb\nRUN --mount=from=data,source=/p,target=/m cat /m/msg > /got\n")
    r1, out = ctx.build(body.format(v="one"), executor)
    assert (out / "got").read_text() == "one\n"
    assert not (out / "m").exists()
    r2, _ = ctx.build(body.format(v="one"), executor)
    assert r2.steps[-1].cached  # same stage content: the RUN is cached
    r3, out3 = ctx.build(body.format(v="two"), executor)
    assert not r3.steps[-1].cached and (out3 / "got").read_text() == "two\n"  # the stage changed: it runs again
    status = {s.name: s.status for s in r3.stages}
    assert status["data"] != "skipped"  # a --mount from= stage is a dependency of the target
    assert status["unrelated"] == "skipped"


def test_bind_context_checksum_is_in_the_key(ctx: Ctx) -> None:
    (ctx.dir / "f").write_text("1")
    body = "FROM bb\nRUN --mount=source=f,target=/f cat /f > /got\n"
    ctx.build(body, "emulate")
    r2, _ = ctx.build(body, "emulate")
    assert r2.steps[-1].cached
    (ctx.dir / "f").write_text("2")
    r3, out = ctx.build(body, "emulate")
    assert not r3.steps[-1].cached and (out / "got").read_text() == "2"


def test_bind_context_honours_dockerignore(ctx: Ctx) -> None:
    (ctx.dir / "keep").write_text("k")
    (ctx.dir / "secret.env").write_text("s")
    (ctx.dir / ".dockerignore").write_text("secret.env\n")
    _, out = ctx.build("FROM bb\nRUN --mount=target=/c ls /c > /list\n", "emulate")
    names = (out / "list").read_text().split()
    assert "keep" in names and "secret.env" not in names


def test_bind_source_cannot_escape_the_context(ctx: Ctx, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host file")
    with pytest.raises(MinibuildError) as exc:
        ctx.build("FROM bb\nRUN --mount=source=../outside.txt,target=/o cat /o > /got\n", "emulate")
    assert "outside the build context" in str(exc.value)
    (ctx.dir / "link").symlink_to(outside)  # a link in the context resolves inside it: nothing there
    with pytest.raises(MinibuildError) as exc:
        ctx.build("FROM bb\nRUN --mount=source=link,target=/o cat /o > /got\n", "emulate")
    assert "host file" not in str(exc.value)


def test_missing_bind_source_is_a_clear_error(ctx: Ctx) -> None:
    with pytest.raises(MinibuildError) as exc:
        ctx.build("FROM bb\nRUN --mount=source=nope,target=/n true\n", "emulate")
    assert "nope" in str(exc.value) and "not found" in str(exc.value)


# ------------------------------------------------------------------------------------------------ cache


@pytest.mark.parametrize("executor", EXECUTORS)
def test_cache_mount_persists_across_builds_and_is_never_in_the_layer(ctx: Ctx, executor: str) -> None:
    _need(executor)
    body = ("FROM bb\nRUN --mount=type=cache,target=/root/.cache/tool "
            "echo run >> /root/.cache/tool/log && wc -l < /root/.cache/tool/log > /runs "
            "&& stat -c '%a %u' /root/.cache/tool > /mode\n")
    r1, out1 = ctx.build(body, executor)
    assert (out1 / "runs").read_text().strip() == "1"
    assert (out1 / "mode").read_text().strip() == "755 0"  # BuildKit: a new cache dir is 0755, uid 0
    assert not (out1 / "root" / ".cache").exists()  # /root/.cache was made only for the mount
    assert not any(".cache" in n for n in ctx.layer_names(r1))
    r2, _ = ctx.build(body, executor)
    assert r2.steps[-1].cached  # the cache's contents are not part of the key
    _, out3 = ctx.build(body, executor, no_cache=True)
    assert (out3 / "runs").read_text().strip() == "2"  # ... but they persist into the next run
    res = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(ctx.store), "prune", "--cache-mounts"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "1 cache mount" in res.stdout
    _, out4 = ctx.build(body, executor, no_cache=True)
    assert (out4 / "runs").read_text().strip() == "1"  # emptied by prune --cache-mounts


def test_cache_mounts_are_keyed_by_id_defaulting_to_target(ctx: Ctx) -> None:
    _, out = ctx.build(
        "FROM bb\n"
        "RUN --mount=type=cache,target=/a,id=shared echo A > /a/f\n"
        "RUN --mount=type=cache,target=/b,id=shared cat /b/f > /via-id\n"
        "RUN --mount=type=cache,target=/c ls /c | wc -l > /other\n", "emulate")
    assert (out / "via-id").read_text() == "A\n"
    assert (out / "other").read_text().strip() == "0"


def test_cache_mount_mode_uid_gid_and_from(ctx: Ctx) -> None:
    _, out = ctx.build(
        "FROM bb AS seed\nRUN mkdir /s && echo seeded > /s/f\n"
        "FROM bb\n"
        "RUN --mount=type=cache,target=/m,mode=0700,uid=0,gid=0 stat -c %a /m > /mode\n"
        "RUN --mount=type=cache,target=/s,from=seed,source=/s cat /s/f > /seeded\n", "emulate")
    assert (out / "mode").read_text() == "700\n"
    assert (out / "seeded").read_text() == "seeded\n"


def test_cache_mount_locked_sharing_runs(ctx: Ctx) -> None:
    _, out = ctx.build("FROM bb\nRUN --mount=type=cache,target=/l,sharing=locked "
                       "--mount=type=cache,target=/p,sharing=private echo ok > /l/x && cat /l/x > /got\n",
                       "emulate")
    assert (out / "got").read_text() == "ok\n"


# ------------------------------------------------------------------------------------------------ tmpfs


@pytest.mark.parametrize("executor", EXECUTORS)
def test_tmpfs_mount_is_empty_and_never_in_the_layer(ctx: Ctx, executor: str) -> None:
    _need(executor)
    r, out = ctx.build("FROM bb\nRUN --mount=type=tmpfs,target=/t,size=1m ls /t | wc -l > /n "
                       "&& echo data > /t/x && cat /t/x > /got\n", executor)
    assert (out / "n").read_text().strip() == "0"
    assert (out / "got").read_text() == "data\n"
    assert not (out / "t").exists()
    if executor == "chroot":  # a real tmpfs: size is its limit (the emulated shell does not enforce it)
        _, out = ctx.build("FROM bb\nRUN --mount=type=tmpfs,target=/t,size=64k "
                           "(dd if=/dev/zero of=/t/big bs=1024 count=256 2>/dev/null; echo $? > /full)\n", executor)
        assert (out / "full").read_text() != "0\n"


# ------------------------------------------------------------------------------------------------ secret

SECRET = b"TOPSECRET-4f1c9a77"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_secret_file_and_env_are_never_in_layer_key_or_history(ctx: Ctx, executor: str, tmp_path: Path) -> None:
    _need(executor)
    body = ("FROM bb\n"
            "RUN --mount=type=secret,id=tok stat -c '%a %u' /run/secrets/tok > /mode "
            "&& cat /run/secrets/tok | wc -c > /len\n"
            "RUN --mount=type=secret,id=tok,env=TOK,required printf %s \"$TOK\" | wc -c > /env\n")
    tar = tmp_path / "image.tar"
    r1 = api.build(ctx.dir, store=ctx.store, executor=executor, output=tar, secrets={"tok": SECRET},
                   dockerfile_text="FROM scratch AS bb\nCOPY bb/ /\n" + body)
    raw = tar.read_bytes()
    assert SECRET not in raw  # not in any layer, config or history of the image tarball (layers are plain tar)
    assert r1.image.layers
    _, out = ctx.build(body, executor, secrets={"tok": SECRET})
    assert (out / "mode").read_text() == "400 0\n"  # BuildKit's default: mode 0400, uid 0
    assert (out / "len").read_text().strip() == str(len(SECRET))
    assert (out / "env").read_text().strip() == str(len(SECRET))
    assert not (out / "run").exists()  # /run and /run/secrets were made only for the mount
    for dirpath, _, files in os.walk(ctx.store):
        for name in files:
            assert SECRET not in (Path(dirpath) / name).read_bytes(), f"secret found in {dirpath}/{name}"
    r2, _ = ctx.build(body, executor, secrets={"tok": b"another value"})
    assert all(s.cached for s in r2.steps)  # the secret's value is not part of the cache key
    assert r2.digest == r1.digest or r2.image.layers == r1.image.layers


def test_secret_target_and_optional_missing_secret(ctx: Ctx) -> None:
    _, out = ctx.build("FROM bb\n"
                       "RUN --mount=type=secret,id=a,target=/etc/app/key,mode=0440 cat /etc/app/key > /got "
                       "&& stat -c %a /etc/app/key > /mode\n"
                       "RUN --mount=type=secret,id=missing (cat /run/secrets/missing || echo absent) > /opt\n",
                       "emulate", secrets={"a": "k"})
    assert (out / "got").read_text() == "k" and (out / "mode").read_text() == "440\n"
    assert (out / "opt").read_text() == "absent\n"  # not required: the RUN runs without it
    assert not (out / "etc" / "app").exists()


def test_required_secret_missing_is_a_clear_error(ctx: Ctx) -> None:
    (ctx.dir / "Dockerfile").write_text("FROM scratch\nCOPY bb/ /\nRUN --mount=type=secret,id=npmrc,required true\n")
    res = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(ctx.store), "build", str(ctx.dir)],
                         capture_output=True, text=True)
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Dockerfile:3" in errors[0] and "secret npmrc" in errors[0], res.stderr
    assert "Traceback" not in res.stderr


def test_cli_secret_from_file_and_env(ctx: Ctx, tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("from-file")
    (ctx.dir / "Dockerfile").write_text(
        "FROM scratch\nCOPY bb/ /\nRUN --mount=type=secret,id=f cat /run/secrets/f > /f\n"
        "RUN --mount=type=secret,id=E,env=E echo $E > /e\n")
    out = tmp_path / "o"
    env = {**os.environ, "MY_VAR": "from-env"}
    res = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(ctx.store), "build", str(ctx.dir),
                          "--secret", f"id=f,src={tmp_path / 's.txt'}", "--secret", "id=E,env=MY_VAR",
                          "-o", f"type=local,dest={out}"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert (out / "f").read_text() == "from-file" and (out / "e").read_text() == "from-env\n"
    bad = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(ctx.store), "build", str(ctx.dir),
                          "--secret", "src=x"], capture_output=True, text=True)
    assert bad.returncode == 1 and "secret ID missing" in bad.stderr and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------------------ ssh


def test_ssh_mount_without_forwarded_agent_is_refused(ctx: Ctx) -> None:
    with pytest.raises(BuildError) as exc:
        ctx.build("FROM bb\nRUN --mount=type=ssh true\n", "emulate")
    assert "--ssh default" in str(exc.value) and exc.value.span is not None and exc.value.span.line == 4


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "agent.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.listen(1)
    try:
        yield path
    finally:
        sock.close()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_ssh_mount_binds_the_agent_socket(ctx: Ctx, executor: str, agent: str) -> None:
    _need(executor)
    _, out = ctx.build("FROM bb\nRUN --mount=type=ssh echo $SSH_AUTH_SOCK > /sock && test -S $SSH_AUTH_SOCK "
                       "&& echo socket > /is\n", executor, ssh={"default": agent})
    assert (out / "sock").read_text() == "/run/buildkit/ssh_agent.0\n"
    assert (out / "is").read_text() == "socket\n"
    assert not (out / "run").exists()


def test_cli_ssh_default_needs_an_agent(ctx: Ctx, agent: str) -> None:
    (ctx.dir / "Dockerfile").write_text("FROM scratch\nCOPY bb/ /\nRUN --mount=type=ssh true\n")
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    res = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(ctx.store), "build", str(ctx.dir),
                          "--ssh", "default"], capture_output=True, text=True, env=env)
    assert res.returncode == 1 and "SSH_AUTH_SOCK" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(ctx.store), "build", str(ctx.dir),
                          "--ssh", "default"], capture_output=True, text=True, env={**env, "SSH_AUTH_SOCK": agent})
    assert res.returncode == 0, res.stderr


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("mount, message", [
    ("type=foo,target=/x", 'unsupported mount type "foo"'),
    ("type=bnd,target=/x", "(did you mean bind?)"),
    ("type=bind,target=/x,mode=0755", 'mode not allowed for "bind" type mounts'),
    ("type=tmpfs,target=/x,uid=1", 'uid not allowed for "tmpfs" type mounts'),
    ("type=cache,target=/x,sharing=everyone", 'unsupported sharing value "everyone"'),
    ("type=bind,target=/x,sharing=locked", "invalid cache sharing set for bind mount"),
    ("type=cache,target=/x,mode=999", "invalid value 999 for mode"),
    ("type=cache,target=/x,uid=-1", "invalid value -1 for uid"),
    ("target=/x,typo=1", "unexpected key 'typo' in 'typo=1'"),
    ("target=/x,required", "unexpected key 'required' for mount type 'bind'"),
    ("target=/x,size=1m", "unexpected key 'size' for mount type 'bind'"),
    ("type=tmpfs,target=/x,size=lots", "invalid value for size: lots"),
    ("target=/x,ro=maybe", "invalid value for ro: maybe"),
    ("target=/x,nonsense", "invalid field 'nonsense' must be a key=value pair"),
    ("type=secret", "invalid secret mount. one of source, target required"),
    ("type=secret,id=a,from=b", "secret mount should not have a from"),
    ("type=secret,id=a,source=b", "both source and id can't be set"),
    ("type=tmpfs,target=/", 'invalid mount target "/"'),
])
def test_bad_mount_options_are_buildkits_errors(ctx: Ctx, mount: str, message: str) -> None:
    with pytest.raises((DockerfileError, BuildError)) as exc:
        ctx.build(f"FROM bb\nRUN --mount={mount} true\n", "emulate")
    assert message in str(exc.value)
    assert exc.value.span is not None and exc.value.span.line == 4


def test_mount_from_variable_is_buildkits_parse_error(ctx: Ctx) -> None:
    with pytest.raises(DockerfileError) as exc:
        ctx.build("FROM bb AS a\nARG X=a\nFROM bb\nRUN --mount=from=$X,target=/m true\n", "emulate")
    assert "'from' doesn't support variable expansion, define alias stage instead" in str(exc.value)


def test_mount_values_are_expanded(ctx: Ctx) -> None:
    _, out = ctx.build("FROM bb\nARG DIR=/cachedir\nRUN --mount=type=cache,target=$DIR ls -d /cachedir > /got\n",
                       "emulate")
    assert (out / "got").read_text() == "/cachedir\n"


def test_progress_shows_the_full_instruction_with_its_flags(ctx: Ctx) -> None:
    events: list[dict[str, object]] = []
    ctx.build("FROM bb\nRUN --mount=type=cache,target=/c,id=x --network=none true\n", "emulate",
              progress=events.append)
    shown = [e["instruction"] for e in events if e.get("type") == "step_start"]
    assert "RUN --mount=type=cache,target=/c,id=x --network=none true" in shown


# ------------------------------------------------------------------------------------------------ non-root

NON_ROOT_DOCKERFILE = """\
FROM bbimg:latest
WORKDIR /w
RUN --mount=type=cache,target=/root/.cache/x echo run >> /root/.cache/x/log && wc -l < /root/.cache/x/log > /runs
RUN --mount=type=secret,id=tok,required wc -c < /run/secrets/tok > /len && stat -c %a /run/secrets/tok > /mode
RUN --mount=target=ctx cat ctx/a.txt > /bind && (echo x > ctx/a.txt 2>/dev/null; echo $? > /ro)
RUN --mount=type=tmpfs,target=/t echo t > /t/t && cat /t/t > /tmpfs
RUN --mount=target=ctx,rw echo y > ctx/a.txt && cat ctx/a.txt > /rw && ls ctx > /listed
"""


@pytest.mark.parametrize("executor", EXECUTORS)
def test_mounts_work_as_non_root(tmp_path: Path, base_root: Path, executor: str) -> None:
    """Both executors as an ordinary user (mbuser; chroot then runs in a user namespace) see every mount as
    root does. (Images are not compared byte for byte: a file a RUN writes as an ordinary user is owned by
    that user's uid in the layer, with or without mounts, a known difference outside RUN --mount.)"""
    require_root()  # to run the same build as mbuser in directories it owns
    _need(executor)
    import pwd
    import shutil

    from tests.cli.support import mb

    try:
        uid = pwd.getpwnam("mbuser").pw_uid
    except KeyError:
        pytest.skip("no mbuser account to run the build as an ordinary user")
    home = Path("/tmp") / f"mb-run-mount-{os.getpid()}"
    home.mkdir(mode=0o755)
    try:
        base = home / "base"
        base.mkdir()
        shutil.copytree(base_root, base / "bb", symlinks=True)
        (base / "Dockerfile").write_text("FROM scratch\nCOPY bb/ /\n")
        p = mb(home / "base-store", "build", str(base), "-t", "bbimg:latest", "-o", str(home / "bb.tar"))
        assert p.returncode == 0, p.stderr
        ctx = home / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(NON_ROOT_DOCKERFILE)
        (ctx / "a.txt").write_text("A")
        (ctx / "ignored.txt").write_text("I")
        (ctx / ".dockerignore").write_text("ignored.txt\n")  # so the context mount is a filtered copy
        (home / "secret").write_text("s3cr3t")
        for path in (home, ctx, ctx / "Dockerfile", ctx / "a.txt", ctx / "ignored.txt", ctx / ".dockerignore",
                     home / "secret", home / "bb.tar"):
            os.chown(path, uid, uid)
        for user in (None, "mbuser"):
            store = home / f"store-{user or 'root'}"
            out = home / f"out-{user or 'root'}"
            assert mb(store, "load", str(home / "bb.tar"), user=user).returncode == 0
            p = mb(store, "build", str(ctx), "--executor", executor, "--secret", f"id=tok,src={home / 'secret'}",
                   "-o", f"type=local,dest={out}", "--progress", "quiet", user=user)
            assert p.returncode == 0, p.stderr
            assert (out / "runs").read_text().strip() == "1" and (out / "len").read_text().strip() == "6"
            assert (out / "mode").read_text() == "400\n" and (out / "bind").read_text() == "A"
            assert (out / "ro").read_text() != "0\n" and (out / "tmpfs").read_text() == "t\n"
            assert (out / "rw").read_text() == "y\n" and "ignored.txt" not in (out / "listed").read_text()
            assert not (out / "w" / "ctx").exists() and not (out / "run").exists() and not (out / "t").exists()
        assert (ctx / "a.txt").read_text() == "A"
    finally:
        shutil.rmtree(home)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_uid_gid_of_secret_and_cache_and_read_only_cache(ctx: Ctx, executor: str) -> None:
    require_root()  # owners other than the invoking user are set only as root
    _need(executor)
    _, out = ctx.build(
        "FROM bb\n"
        "RUN --mount=type=secret,id=s,uid=1000,gid=1001 stat -c %u:%g:%a /run/secrets/s > /secret\n"
        "RUN --mount=type=cache,target=/cache,uid=1000,gid=1001,mode=0750 stat -c %u:%g:%a /cache > /cache-ids\n"
        "RUN --mount=type=cache,target=/cro,ro (echo x > /cro/f; echo $? > /cro-rc)\n", executor, secrets={"s": b"v"})
    assert (out / "secret").read_text() == "1000:1001:400\n"
    assert (out / "cache-ids").read_text() == "1000:1001:750\n"
    assert (out / "cro-rc").read_text() != "0\n"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_mount_inside_another_mount(ctx: Ctx, executor: str) -> None:
    """A cache inside a context bind (read-only or rw) and a secret inside a tmpfs: the inner mount point is
    made inside the outer mount (a private copy: the context is never written), as a kernel mount needs."""
    _need(executor)
    (ctx.dir / "src").mkdir()
    (ctx.dir / "src" / "pkg.json").write_text("{}")
    _, out = ctx.build(
        "FROM bb\n"
        "RUN --mount=target=/src,source=src --mount=type=cache,target=/src/node_modules "
        "touch /src/node_modules/x && ls /src > /ro-ls && (touch /src/new 2>/dev/null; echo $? > /ro-rc)\n"
        "RUN --mount=target=/src,source=src,rw --mount=type=cache,target=/src/node_modules ls /src/node_modules > /rw\n"
        "RUN --mount=type=tmpfs,target=/t --mount=type=secret,id=s,target=/t/deep/s cat /t/deep/s > /tsec\n",
        executor, secrets={"s": b"v"})
    assert (out / "ro-ls").read_text().split() == ["node_modules", "pkg.json"]
    assert (out / "ro-rc").read_text() != "0\n"  # the outer bind stays read-only
    assert (out / "rw").read_text() == "x\n"  # the cache persisted between the two RUNs
    assert (out / "tsec").read_text() == "v"
    assert sorted(os.listdir(ctx.dir / "src")) == ["pkg.json"]
    assert not (out / "src").exists() and not (out / "t").exists()
