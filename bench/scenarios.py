"""Benchmark inputs: the busybox base archive and each scenario's Dockerfile + context, generated deterministically."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

BASE_NAME = "mbbench/busybox:latest"
BUSYBOX = Path("/bin/busybox")
# the applets the scenarios' RUN lines use (plus a few common ones), as relative links to /bin/busybox
APPLETS = (
    "sh", "ls", "cat", "echo", "mkdir", "rm", "cp", "mv", "ln", "touch", "chmod", "chown", "test", "[",
    "true", "false", "pwd", "env", "id", "grep", "sed", "find", "head", "tail", "wc", "sort", "printf",
    "stat", "readlink", "tar", "gzip", "sleep", "basename", "dirname", "uniq", "tee", "xargs", "which",
    "whoami", "date", "seq", "rmdir", "cut", "tr", "expr", "httpd",
)
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """Scenario sizes: full (the issue's numbers) or quick (a smoke run)."""

    seed_files: int = 50
    big_files: int = 5000
    big_bytes: int = 200 * 1000 * 1000
    stages: int = 10
    per_stage: int = 30
    linear_factor: int = 10


FULL = Sizes()
QUICK = Sizes(big_files=500, big_bytes=20 * 1000 * 1000, stages=3, per_stage=12, linear_factor=4)


# ------------------------------------------------------------------------------------------ base image
def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: bytes, mode: int, *, size: int = 0, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.size = size
    ti.linkname = link
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def busybox_layer() -> bytes:
    """The base layer: Debian's static /bin/busybox, its applet links, /etc/passwd+group, a few dirs."""
    if not BUSYBOX.exists():
        raise SystemExit("bench needs Debian's busybox-static at /bin/busybox (apt-get install busybox-static)")
    bb = BUSYBOX.read_bytes()
    passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    group = b"root:x:0:\nnogroup:x:65534:\n"
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for d, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777), ("usr", 0o755),
                    ("usr/bin", 0o755), ("var", 0o755)):
        members.append((_info(d + "/", tarfile.DIRTYPE, mode), None))
    members.append((_info("bin/busybox", tarfile.REGTYPE, 0o755, size=len(bb)), bb))
    for applet in APPLETS:
        members.append((_info(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox"), None))
    members.append((_info("etc/passwd", tarfile.REGTYPE, 0o644, size=len(passwd)), passwd))
    members.append((_info("etc/group", tarfile.REGTYPE, 0o644, size=len(group)), group))
    members.sort(key=lambda m: m[0].name)
    return _tar_bytes(members)


def write_base_archive(path: Path) -> Path:
    """A `docker save` (v1.2 manifest.json) archive of the busybox base, named BASE_NAME; deterministic bytes."""
    layer = busybox_layer()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "minibuild bench: busybox base"}],
    }, sort_keys=True, separators=(",", ":")).encode()
    cfg_hex = hashlib.sha256(config).hexdigest()
    layer_dir = hashlib.sha256(layer).hexdigest()
    manifest = json.dumps([{"Config": f"{cfg_hex}.json", "RepoTags": [BASE_NAME],
                            "Layers": [f"{layer_dir}/layer.tar"]}]).encode()
    members = [
        (_info(f"{layer_dir}/", tarfile.DIRTYPE, 0o755), None),
        (_info(f"{layer_dir}/layer.tar", tarfile.REGTYPE, 0o644, size=len(layer)), layer),
        (_info(f"{cfg_hex}.json", tarfile.REGTYPE, 0o644, size=len(config)), config),
        (_info("manifest.json", tarfile.REGTYPE, 0o644, size=len(manifest)), manifest),
    ]
    path.write_bytes(_tar_bytes(members))
    return path


# ------------------------------------------------------------------------------------------ scenarios
@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A Dockerfile and its context directory; ``tag`` names the built image in every engine."""

    name: str
    context: Path
    tag: str


def _reset(d: Path) -> Path:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


SEED_DOCKERFILE = f"""\
# syntax=docker/dockerfile:1
FROM {BASE_NAME} AS build
WORKDIR /src
COPY package.json ./
RUN mkdir -p node_modules && echo installed > node_modules/.state && cat package.json > node_modules/.lock
COPY src ./src
COPY public ./public
RUN mkdir -p dist && cat src/*.js > dist/app.js && cp public/* dist/ && wc -c dist/app.js > dist/size.txt

FROM {BASE_NAME}
ENV APP_HOME=/usr/share/nginx/html
WORKDIR /usr/share/nginx/html
COPY --from=build /src/dist ./
EXPOSE 80
CMD ["httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"]
"""


def make_seed(root: Path, sizes: Sizes = FULL) -> Scenario:
    """The Node + Nginx-style two-stage build: package.json, src/*.js and public/* (``seed_files`` files in all)."""
    ctx = _reset(root / "seed")
    (ctx / "Dockerfile").write_text(SEED_DOCKERFILE)
    (ctx / ".dockerignore").write_text("node_modules\n*.log\n")
    (ctx / "package.json").write_text(json.dumps({"name": "app", "version": "1.0.0",
                                                   "dependencies": {"left-pad": "1.3.0"}}, indent=2) + "\n")
    (ctx / "src").mkdir()
    (ctx / "public").mkdir()
    rnd = random.Random(8)
    n_public = 4
    for i in range(sizes.seed_files - 1 - n_public):
        body = "\n".join(f"export const v{i}_{j} = {rnd.randrange(10**6)};" for j in range(40))
        (ctx / "src" / f"mod{i:03d}.js").write_text(f"// module {i}\n{body}\n")
    for i in range(n_public):
        (ctx / "public" / f"page{i}.html").write_text(f"<html><body>page {i}</body></html>\n")
    return Scenario(name="seed", context=ctx, tag="mbbench/seed:latest")


def edit_seed(s: Scenario, round_no: int) -> None:
    """Change one source file (different content each round, so each round is a partial cache hit)."""
    f = s.context / "src" / "mod007.js"
    f.write_text(f.read_text().split("// edit")[0] + f"// edit {round_no}\n")


_WORDS = [w.encode() for w in (
    "the of and to in is for on that with as by this from are be at or an it not have which if may all other "
    "layer image build docker file tree digest config manifest index blob store cache stage copy run env user "
    "def return import class self none true false while else elif try except raise yield lambda async await"
).split()]


def make_big(root: Path, sizes: Sizes = FULL) -> Scenario:
    """``COPY . /app`` of ``big_files`` files totalling ``big_bytes`` (60% text-like, 40% random) in 500 dirs."""
    ctx = _reset(root / "big")
    (ctx / "Dockerfile").write_text(f"FROM {BASE_NAME}\nCOPY . /app\nCMD [\"ls\", \"/app\"]\n")
    rnd = random.Random(42)
    n = sizes.big_files
    avg = sizes.big_bytes // n
    text_block = b" ".join(rnd.choice(_WORDS) for _ in range(max(64, 3 * avg // 4)))
    written = 0
    for i in range(n):
        d = ctx / f"d{i % 50:02d}" / f"s{(i // 50) % 10}"
        d.mkdir(parents=True, exist_ok=True)
        size = max(1, int(rnd.uniform(0.2, 1.8) * avg)) if i < n - 1 else max(1, sizes.big_bytes - written)
        if i % 5 < 3:
            off = rnd.randrange(len(text_block))
            data = (text_block[off:] + text_block)[:size]
            data = (data * (size // max(1, len(data)) + 1))[:size]
            data = f"{i}:".encode() + data[len(str(i)) + 1:]
        else:
            data = rnd.randbytes(size)
        (d / f"f{i:05d}.dat").write_bytes(data)
        written += len(data)
    return Scenario(name="big", context=ctx, tag="mbbench/big:latest")


def touch_all(ctx: Path, when: float) -> int:
    """Set every file's mtime/atime to ``when`` (content unchanged): a warm build must still hit the cache."""
    count = 0
    for dirpath, _dirs, files in os.walk(ctx):
        for name in files:
            os.utime(os.path.join(dirpath, name), (when, when))
            count += 1
    return count


def many_steps_dockerfile(stages: int, per_stage: int) -> str:
    """``stages`` stages of ``per_stage`` instructions each (FROM counts), mixing RUN, COPY and metadata steps;
    the last stage COPY --from's every earlier stage so every engine builds all of them."""
    lines = ["# generated: %d stages x %d instructions" % (stages, per_stage)]
    for s in range(stages):
        lines.append(f"FROM {BASE_NAME} AS s{s}")
        count = 1
        if s == stages - 1:
            for prev in range(s):
                if count >= per_stage:
                    break
                lines.append(f"COPY --from=s{prev} /data/s{prev}/ /collected/s{prev}/")
                count += 1
        i = 0
        while count < per_stage:
            kind = i % 5
            if kind == 0:
                lines.append(f"RUN mkdir -p /data/s{s} && echo s{s}-{i} > /data/s{s}/r{i:03d}.txt")
            elif kind == 1:
                lines.append(f"COPY files/f{(s * 7 + i) % 20:02d}.txt /data/s{s}/c{i:03d}.txt")
            elif kind == 2:
                lines.append(f"ENV S{s}_V{i}=value-{s}-{i}")
            elif kind == 3:
                lines.append(f"LABEL bench.s{s}.l{i}=\"{s}/{i}\"")
            else:
                lines.append(f"WORKDIR /data/s{s}/w{i % 3}")
            count += 1
            i += 1
    return "\n".join(lines) + "\n"


def make_many(root: Path, stages: int, per_stage: int, name: str = "many") -> Scenario:
    """The many-steps scenario at the given size, with 20 small files for its COPY steps."""
    ctx = _reset(root / name)
    (ctx / "Dockerfile").write_text(many_steps_dockerfile(stages, per_stage))
    (ctx / "files").mkdir()
    for i in range(20):
        (ctx / "files" / f"f{i:02d}.txt").write_text(f"file {i}\n" * (i + 1))
    return Scenario(name=name, context=ctx, tag=f"mbbench/{name}:latest")


def tree_bytes(root: Path) -> int:
    """Total size of the regular files under ``root``."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
