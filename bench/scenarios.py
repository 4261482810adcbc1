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
    return _tar_bytes(busybox_members())


def busybox_members() -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """The busybox base layer's entries, sorted by name (mtime 0, root-owned)."""
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
    return members


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


# ------------------------------------------------------------------------------------------ big base image
BIG_BASE_REPO = "mbbench/bigbase"
BIG_BASE_FILES = 20_000  # at x1; the bench multiplies both by --big-base-scale for the second size
BIG_BASE_BYTES = 200 * 1000 * 1000
QUICK_BIG_BASE_FILES = 1_000
QUICK_BIG_BASE_BYTES = 10 * 1000 * 1000
_BIG_BASE_VERSION = 1  # bump when the generator's output changes: it names the cached archive
_BIG_MTIME = 1_700_000_000
_POOL = 4 << 20
# (share of the files, directory pattern, file name pattern, median size in bytes, log-normal sigma, content)
_BIG_KINDS: tuple[tuple[float, str, str, int, float, str], ...] = (
    (0.20, "usr/share/doc/{pkg}", "{word}{n}", 2_000, 1.2, "text"),
    (0.17, "usr/lib/python3/dist-packages/{pkg}/{sub}", "{word}{n}.py", 6_000, 1.0, "text"),
    (0.12, "usr/include/{pkg}", "{word}{n}.h", 4_000, 1.0, "text"),
    (0.10, "usr/share/locale/{lang}/LC_MESSAGES", "{pkg}.mo", 20_000, 1.0, "mixed"),
    (0.09, "usr/share/man/man{sec}", "{pkg}-{word}{n}.{sec}.gz", 3_000, 0.8, "random"),
    (0.08, "usr/lib/x86_64-linux-gnu/{pkg}", "lib{word}{n}.so.{sec}", 120_000, 1.3, "binary"),
    (0.06, "usr/libexec/{pkg}", "{word}-{n}", 60_000, 1.2, "binary"),
    (0.08, "usr/share/{pkg}/data/{sub}", "{word}{n}.dat", 15_000, 1.5, "mixed"),
    (0.05, "var/lib/dpkg/info", "{pkg}.{word}{n}", 1_500, 1.0, "text"),
    (0.05, "etc/{pkg}", "{word}{n}.conf", 1_200, 0.8, "text"),
)
_LANGS = ("ar", "bg", "ca", "cs", "da", "de", "el", "es", "et", "fi", "fr", "gl", "he", "hr", "hu", "id", "it",
          "ja", "ko", "lt", "nb", "nl", "pl", "pt", "pt_BR", "ro", "ru", "sk", "sl", "sr", "sv", "tr", "uk", "zh_CN")


@dataclass(frozen=True, slots=True)
class BigBase:
    """A generated base image: its tag, file count and bytes of file content, and its docker-save archive."""

    tag: str
    files: int
    bytes: int
    archive: Path


def big_base_tag(files: int) -> str:
    return f"{BIG_BASE_REPO}:{files}"


def _big_base_plan(files: int, total: int, seed: int) -> list[tuple[str, int, str]]:
    """(path, size, content kind) of every generated file: a Debian-like tree, log-normal sizes summing to total."""
    rnd = random.Random(seed)
    words = [w.decode() for w in _WORDS]
    pkgs = [f"{rnd.choice(words)}{i}" for i in range(max(8, files // 60))]
    subs = ("core", "util", "io", "net", "tests", "ext", "compat", "_impl")
    weights = [k[0] for k in _BIG_KINDS]
    seen: set[str] = set()
    plan: list[tuple[str, float, str]] = []
    for i in range(files):
        _w, dpat, npat, median, sigma, content = rnd.choices(_BIG_KINDS, weights)[0]
        fields = {"pkg": rnd.choice(pkgs), "sub": rnd.choice(subs), "lang": rnd.choice(_LANGS),
                  "sec": rnd.choice("1234578"), "word": rnd.choice(words), "n": rnd.randrange(100)}
        path = dpat.format(**fields) + "/" + npat.format(**fields)
        if path in seen:
            path += f".{i}"
        seen.add(path)
        plan.append((path, rnd.lognormvariate(0.0, sigma) * median, content))
    cap = max(total / 40, 1.0)  # no single file above 2.5 % of the base
    raw = [min(size, cap) for _p, size, _c in plan]
    scale = total / sum(raw)
    sizes = [max(1, int(s * scale)) for s in raw]
    sizes[-1] = max(1, sizes[-1] + total - sum(sizes))
    return [(p, n, c) for (p, _s, c), n in zip(plan, sizes)]


def _pools(seed: int) -> dict[str, bytes]:
    """Content pools (doubled, so any slice up to _POOL bytes wraps): incompressible, text, and a half-and-half
    'binary' (random 4 KiB blocks between runs of text and zeros, as code and data sections are)."""
    rnd = random.Random(seed)
    rand = rnd.randbytes(_POOL)
    text = b" ".join(rnd.choice(_WORDS) for _ in range(_POOL // 4))[:_POOL]
    blocks = []
    for i in range(_POOL // 4096):
        blocks.append(rand[i * 4096:(i + 1) * 4096] if i % 2 else
                      (text[i * 4096:i * 4096 + 2048] + bytes(2048)))
    binary = b"".join(blocks)
    mixed = b"".join(rand[i:i + 8192] if (i // 8192) % 2 else text[i:i + 8192] for i in range(0, _POOL, 8192))
    return {k: v + v for k, v in (("random", rand), ("text", text), ("binary", binary), ("mixed", mixed))}


def _content(pools: dict[str, bytes], kind: str, path: str, size: int, off: int) -> bytes:
    head = f"{path}\n".encode()
    pool = pools[kind]
    if size <= _POOL:
        body = pool[off:off + size]
    else:
        body = (pool[off:off + _POOL] * (size // _POOL + 1))[:size]
    return (head + body[len(head):])[:size] if size > len(head) else head[:size]


def write_big_base(out: Path, files: int, total: int, *, seed: int = 20_000) -> Path:
    """A ``docker save`` archive of one layer: the busybox base (so RUN lines work everywhere) plus ``files``
    generated files of ``total`` bytes in a Debian-like tree (docs, python modules, headers, locales, man pages,
    shared libraries, data; sizes log-normal per kind, content text-like, random or half-and-half). Deterministic:
    fixed seed, fixed mtimes, sorted entries. Written beside ``out`` first and renamed (a cache of it stays whole)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    plan = _big_base_plan(files, total, seed)
    pools = _pools(seed)
    rnd = random.Random(seed + 1)
    entries: dict[str, tuple[tarfile.TarInfo, bytes | None] | tuple[str, int, str]] = {}
    for info, data in busybox_members():
        entries[info.name] = (info, data)
    for path, size, kind in plan:
        parts = path.split("/")
        for k in range(1, len(parts)):
            d = "/".join(parts[:k]) + "/"
            if d not in entries:
                di = _info(d, tarfile.DIRTYPE, 0o755)
                di.mtime = _BIG_MTIME
                entries[d] = (di, None)
        entries[path] = (path, size, kind)
    layer = out.with_name(out.name + ".layer.tmp")
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(entries):
            e = entries[name]
            if isinstance(e[0], tarfile.TarInfo):
                info, data = e  # type: ignore[misc]
                tf.addfile(info, io.BytesIO(data) if data is not None else None)
                continue
            path, size, kind = e  # type: ignore[misc]
            mode = 0o755 if kind == "binary" and "/lib" not in path[:8] else 0o644
            ti = _info(path, tarfile.REGTYPE, mode, size=size)
            ti.mtime = _BIG_MTIME
            tf.addfile(ti, io.BytesIO(_content(pools, kind, path, size, rnd.randrange(_POOL))))
    h = hashlib.sha256()
    with open(layer, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    hexd = h.hexdigest()
    tag = big_base_tag(files)
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hexd}"]},
        "history": [{"created": "1970-01-01T00:00:00Z",
                     "created_by": f"minibuild bench: big base, {files} files, {total} bytes"}],
    }, sort_keys=True, separators=(",", ":")).encode()
    cfg = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{cfg}.json", "RepoTags": [tag], "Layers": [f"{hexd}/layer.tar"]}]).encode()
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(_info(f"{hexd}/", tarfile.DIRTYPE, 0o755))
        with open(layer, "rb") as f:
            tf.addfile(_info(f"{hexd}/layer.tar", tarfile.REGTYPE, 0o644, size=layer.stat().st_size), f)
        for name, data in ((f"{cfg}.json", config), ("manifest.json", manifest)):
            tf.addfile(_info(name, tarfile.REGTYPE, 0o644, size=len(data)), io.BytesIO(data))
    layer.unlink()
    tmp.replace(out)
    return out


def big_base(cache: Path, files: int, total: int) -> BigBase:
    """The big base of this size, from ``cache`` when an archive of this generator version is there."""
    out = cache / f"bigbase-v{_BIG_BASE_VERSION}-{files}-{total}.tar"
    if not out.exists():
        write_big_base(out, files, total)
    return BigBase(tag=big_base_tag(files), files=files, bytes=total, archive=out)


def make_big_base_ctx(root: Path, base: BigBase) -> Scenario:
    """Two RUNs and a COPY on the big base; ``--build-arg ROUND=k`` changes only the last RUN's key."""
    ctx = _reset(root / f"bigbase-{base.files}")
    (ctx / "Dockerfile").write_text(
        f"FROM {base.tag}\n"
        "RUN echo one > /one\n"
        "COPY a.txt /a.txt\n"
        "ARG ROUND=0\n"
        "RUN cat /a.txt >> /one && echo \"round $ROUND\" >> /one\n")
    (ctx / "a.txt").write_text("a line from the context\n")
    return Scenario(name=f"bigbase-{base.files}", context=ctx, tag=f"mbbench/bigbase-app:{base.files}")


def make_toolchain(root: Path, dockerfile: str, source: str) -> Scenario:
    """The multi-stage gcc build: hello.c compiled statically in stage 1, copied FROM scratch in stage 2."""
    ctx = _reset(root / "toolchain")
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "hello.c").write_text(source)
    return Scenario(name="toolchain", context=ctx, tag="mbbench/toolchain:latest")
