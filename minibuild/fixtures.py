"""Fixture base images: text-only stand-ins for official images (node, nginx, golang, python, Java, .NET...), from YAML."""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from minibuild.errors import ConfigError
from minibuild.fixtures_padding import Padding, cached_file, padding_scale, parse_size
from minibuild.record import record

ENV_DIR = "MINIBUILD_FIXTURES_DIR"
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "ExposedPorts", "User", "StopSignal", "Labels", "Volumes")
# minibuild/rootfs_fixtures is a link to the top-level rootfs_fixtures/ in a checkout (editable install) and a
# real directory in a wheel (setuptools follows the link when it collects package data).
_DEFAULT_DIR = Path(__file__).parent / "rootfs_fixtures"
_REGISTRY_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "registry-1.docker.io/library/", "library/")


@record
class Extra:
    """An entry a git tree cannot hold (empty dir, symlink) or an owner/mode override for a tree path."""

    path: str
    type: Literal["dir", "symlink", "file"]
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    target: str = ""
    content: str | None = None


@record
class FixtureFile:
    """One member of a fixture's root: type, mode, owner and where its bytes are (tree file or padding)."""

    path: str
    type: Literal["file", "dir", "symlink"]
    mode: int
    uid: int = 0
    gid: int = 0
    size: int = 0
    linkname: str = ""
    source: Path | None = None
    data: bytes | None = None
    padding_seed: str | None = None


@record
class Fixture:
    """A resolved fixture image ``name:tag``: its OCI config section, its files, and its teaching note."""

    name: str
    tag: str
    directory: Path
    teaching_note: str
    created: int
    config: dict[str, Any] = field(compare=False)
    layers: tuple[Path, ...]
    extras: tuple[Extra, ...]
    padding: tuple[Padding, ...]
    fingerprint: str = field(default="", compare=False)
    repository: str = ""  # the image's repository when it is not the directory name (mcr.microsoft.com/dotnet/sdk)

    @property
    def summary(self) -> str:
        """The teaching note's first sentence, whole (what the base layer's history says it is)."""
        text = " ".join(self.teaching_note.split())
        return re.split(r"(?<=[.!?])\s+", text, maxsplit=1)[0]

    @property
    def reference(self) -> str:
        return f"{self.repository or self.name}:{self.tag}"

    @property
    def created_iso(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))

    def files(self) -> tuple[FixtureFile, ...]:
        """Every member of the root (tree layers overlaid in order, extras, padding), sorted by path."""
        return _files(self)

    @property
    def size(self) -> int:
        """Bytes of file content in the root, padding included."""
        return sum(f.size for f in self.files() if f.type == "file")

    def entries(self, padding_dir: Path | None = None) -> Iterator[Any]:
        """The root as B1's ``Entry`` records (mtime = ``created``); padding is streamed from generated files kept
        in ``padding_dir`` (default: the padding cache), never held in memory."""
        from minibuild.store.tarlayer import Entry

        for f in self.files():
            if f.type == "file":
                src = f.source
                if f.padding_seed is not None:
                    src = cached_file(f.padding_seed, f.size, padding_dir)
                yield Entry(path=f.path, type="file", mode=f.mode, uid=f.uid, gid=f.gid, size=f.size,
                            mtime=self.created, source_path=str(src) if src else None, data=f.data)
            elif f.type == "dir":
                yield Entry(path=f.path, type="dir", mode=f.mode, uid=f.uid, gid=f.gid, mtime=self.created)
            else:
                yield Entry(path=f.path, type="symlink", mode=0o777, uid=f.uid, gid=f.gid, linkname=f.linkname,
                            mtime=self.created)

    def materialize(self, dest: Path, *, padding_dir: Path | None = None) -> None:
        """Write the root into the (empty or missing) directory ``dest`` with modes, owners (when root) and mtimes."""
        dest.mkdir(parents=True, exist_ok=True)
        chown = os.geteuid() == 0
        dirs: list[tuple[Path, FixtureFile]] = []
        for f in self.files():
            target = dest / f.path
            if f.type == "dir":
                target.mkdir(parents=True, exist_ok=True)
                dirs.append((target, f))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if f.type == "symlink":
                target.symlink_to(f.linkname)
                if chown:
                    os.lchown(target, f.uid, f.gid)
                os.utime(target, (self.created, self.created), follow_symlinks=False)
                continue
            if f.data is not None:
                target.write_bytes(f.data)
            else:
                src = cached_file(f.padding_seed, f.size, padding_dir) if f.padding_seed else f.source
                assert src is not None
                shutil.copyfile(src, target)
            if chown:
                os.chown(target, f.uid, f.gid)
            os.chmod(target, f.mode)
            os.utime(target, (self.created, self.created))
        for target, f in reversed(dirs):
            if chown:
                os.chown(target, f.uid, f.gid)
            os.chmod(target, f.mode)
            os.utime(target, (self.created, self.created))


def fixtures_dir() -> Path:
    """The directory holding ``<name>/fixture.yaml``: $MINIBUILD_FIXTURES_DIR, else the repository's rootfs_fixtures."""
    env = os.environ.get(ENV_DIR)
    return Path(env) if env else _DEFAULT_DIR


def normalize_name(name: str) -> str:
    """``docker.io/library/node`` and ``library/node`` are ``node``; other names are kept (lowercased)."""
    name = name.lower()
    for prefix in _REGISTRY_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def fixture_names() -> tuple[str, ...]:
    """Names of the fixture images available (directories with a fixture.yaml, not starting with ``_``)."""
    base = fixtures_dir()
    if not base.is_dir():
        return ()
    return tuple(sorted(p.name for p in base.iterdir() if not p.name.startswith("_") and (p / "fixture.yaml").is_file()))


def list_fixtures() -> tuple[str, ...]:
    """Every ``name:tag`` a FROM line can use without a registry, sorted."""
    out: list[str] = []
    for name in fixture_names():
        spec = _load(fixtures_dir() / name)
        out.extend(f"{spec.repository}:{tag}" for tag in spec.variants)
    return tuple(sorted(out))


def fixture_repositories() -> tuple[str, ...]:
    """The image names of the fixtures (``node``, ``mcr.microsoft.com/dotnet/sdk``...), sorted."""
    return tuple(sorted(_load(fixtures_dir() / name).repository for name in fixture_names()))


def fixture_tags(name: str) -> tuple[str, ...]:
    """The tags of the fixture named ``name`` (Docker Hub spellings accepted), sorted; () when it is no fixture."""
    name = normalize_name(name)
    directory = _repositories(fixtures_dir()).get(name) if "/" in name else fixtures_dir() / name
    if directory is None or name.startswith("_") or not (directory / "fixture.yaml").is_file():
        return ()
    spec = _load(directory)
    return tuple(sorted(spec.variants)) if spec.repository == name else ()


def find_fixture(name: str, tag: str = "latest") -> Fixture | None:
    """The fixture for ``name:tag`` (Docker Hub official-image spellings accepted), or None when there is none."""
    name = normalize_name(name)
    tag = tag or "latest"
    if "/" in name:  # a fixture declaring `repository:` (mcr.microsoft.com/dotnet/sdk), else none
        found = _repositories(fixtures_dir()).get(name)
        if found is None:
            return None
        directory = found
    else:
        directory = fixtures_dir() / name
    if name.startswith("_") or not (directory / "fixture.yaml").is_file():
        return None
    spec = _load(directory)
    if spec.repository != name:  # a fixture with its own repository is found by that name only
        return None
    variant = spec.variants.get(tag)
    if variant is None:
        return None
    return _build(spec, tag, variant, padding_scale())


# --------------------------------------------------------------------------- YAML loading (cached per directory)


@record
class _Variant:
    env: tuple[tuple[str, str], ...]
    config: dict[str, Any]
    layers: tuple[str, ...]
    padding: tuple[dict[str, Any], ...]
    extras: tuple[dict[str, Any], ...]


@record
class _Spec:
    name: str
    repository: str
    directory: Path
    teaching_note: str
    created: int
    config: dict[str, Any]
    variants: dict[str, _Variant]


def _repositories(base: Path) -> dict[str, Path]:
    """``repository`` -> fixture directory, for the fixtures whose repository is not their directory name."""
    out: dict[str, Path] = {}
    if base.is_dir():
        for p in sorted(base.iterdir()):
            if not p.name.startswith("_") and (p / "fixture.yaml").is_file():
                spec = _load(p)
                if spec.repository != spec.name:
                    out[spec.repository] = p
    return out


def _fail(directory: Path, msg: str) -> ConfigError:
    return ConfigError(f"{directory / 'fixture.yaml'}: {msg}")


@lru_cache(maxsize=64)
def _load(directory: Path) -> _Spec:
    import yaml

    path = directory / "fixture.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read fixture {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise _fail(directory, "must be a mapping")
    name = doc.get("name")
    if name != directory.name:
        raise _fail(directory, f"name {name!r} must equal its directory name {directory.name!r}")
    note = doc.get("teaching_note")
    if not isinstance(note, str) or "stand-in" not in note:
        raise _fail(directory, "teaching_note must say that this image is a stand-in and what its tools do")
    repository = doc.get("repository", name)
    if not isinstance(repository, str) or repository != repository.lower() or ":" in repository or not repository:
        raise _fail(directory, f"repository {repository!r} must be a lowercase image name without a tag")
    if repository != name and "/" not in repository:
        raise _fail(directory, f"repository {repository!r} of a fixture must name a registry path or be its name")
    created = _parse_time(directory, doc.get("created", "1970-01-01T00:00:00Z"))
    config = _check_config(directory, doc.get("config") or {})
    base_layers = tuple(doc.get("layers") or ("root",))
    base_padding = tuple(doc.get("padding") or ())
    base_extras = tuple(doc.get("extra") or ())
    versions = doc.get("versions") or [{"tags": ["latest"]}]
    flavors = doc.get("flavors") or [{"suffix": ""}]
    variants: dict[str, _Variant] = {}
    for version in versions:
        for flavor in flavors:
            suffixes = [flavor.get("suffix", ""), *flavor.get("aliases", ())]
            variant = _Variant(
                env=tuple({**_env_map(version.get("env")), **_env_map(flavor.get("env"))}.items()),
                config=_check_config(directory, {**(version.get("config") or {}), **(flavor.get("config") or {})}),
                layers=tuple(flavor.get("layers") or base_layers),
                padding=(tuple(flavor["padding"]) if "padding" in flavor else base_padding)
                + tuple(version.get("padding") or ()),  # e.g. the OS (flavour) + the JDK or JRE (version)
                extras=base_extras + tuple(version.get("extra") or ()) + tuple(flavor.get("extra") or ()),
            )
            for vtag in version.get("tags") or ():
                for suffix in suffixes:
                    tag = suffix[1:] if (vtag == "latest" and suffix) else f"{vtag}{suffix}"
                    if tag in variants:
                        raise _fail(directory, f"tag {tag!r} is declared twice")
                    variants[tag] = variant
    for variant in variants.values():
        for layer in variant.layers:
            if not (directory / layer).is_dir():
                raise _fail(directory, f"layer tree {layer!r} does not exist")
    return _Spec(name=name, repository=repository, directory=directory, teaching_note=note.strip(), created=created,
                 config=config, variants=variants)


def _parse_time(directory: Path, value: Any) -> int:
    try:
        return calendar.timegm(time.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise _fail(directory, f"created {value!r} must look like 2024-11-12T00:00:00Z") from None


def _env_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


def _check_config(directory: Path, config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise _fail(directory, "config must be a mapping")
    for key, value in config.items():
        if key not in CONFIG_KEYS:
            raise _fail(directory, f"unknown config key {key!r} (known: {', '.join(CONFIG_KEYS)})")
        ok = True
        if key in ("Env", "Cmd", "Entrypoint"):
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            if key == "Env" and ok:
                ok = all("=" in v for v in value)
        elif key in ("WorkingDir", "User", "StopSignal"):
            ok = isinstance(value, str)
        elif key in ("ExposedPorts", "Volumes"):
            ok = isinstance(value, dict) and all(v in ({}, None) for v in value.values())
            if key == "ExposedPorts" and ok:
                ok = all(str(p).split("/")[0].isdigit() and str(p).split("/")[-1] in ("tcp", "udp", "sctp")
                         for p in value if "/" in str(p))
        elif key == "Labels":
            ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        if not ok:
            raise _fail(directory, f"config {key} has the wrong shape: {value!r}")
    return config


def _build(spec: _Spec, tag: str, variant: _Variant, scale: float) -> Fixture:
    config = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
              for k, v in {**spec.config, **variant.config}.items()}
    env = [e for e in config.get("Env", [])]
    keys = [e.split("=", 1)[0] for e in env]
    for k, v in variant.env:
        if k in keys:
            env[keys.index(k)] = f"{k}={v}"
        else:
            env.append(f"{k}={v}")
            keys.append(k)
    config["Env"] = env
    for key in ("ExposedPorts", "Volumes"):
        if key in config:
            config[key] = {str(k): {} for k in config[key]}
    paddings = []
    for i, decl in enumerate(variant.padding):
        try:
            size = int(parse_size(decl["size"]) * scale)
            paddings.append(Padding(dir=str(decl["dir"]), size=size, files=int(decl.get("files", 1)),
                                    seed=f"{spec.name}:{decl['dir']}:{i}"))
        except (KeyError, TypeError, ValueError) as exc:
            raise _fail(spec.directory, f"padding {decl!r} needs dir and size ({exc})") from None
    extras = tuple(_extra(spec.directory, e) for e in variant.extras)
    fixture = Fixture(name=spec.name, tag=tag, directory=spec.directory, teaching_note=spec.teaching_note,
                      created=spec.created, config=config,
                      layers=tuple((spec.directory / layer).resolve() for layer in variant.layers),
                      extras=extras, padding=tuple(paddings),
                      repository=spec.repository if spec.repository != spec.name else "")
    digest = hashlib.sha256()
    identity: dict[str, Any] = {"name": spec.name, "created": spec.created, "config": config}
    if spec.repository != spec.name:
        identity["repository"] = spec.repository
    digest.update(json.dumps(identity, sort_keys=True).encode())
    for f in _files(fixture):
        h = _file_sha256(f.source, f.size) if f.source else (
            hashlib.sha256(f.data).hexdigest() if f.data is not None else f.padding_seed or "")
        digest.update(json.dumps([f.path, f.type, f.mode, f.uid, f.gid, f.size, f.linkname, h]).encode())
    object.__setattr__(fixture, "fingerprint", "sha256:" + digest.hexdigest())
    return fixture


@lru_cache(maxsize=4096)
def _file_sha256(path: Path, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _extra(directory: Path, raw: Any) -> Extra:
    if not isinstance(raw, dict) or "path" not in raw:
        raise _fail(directory, f"extra entry {raw!r} needs a path")
    kind = raw.get("type", "dir")
    if kind not in ("dir", "symlink", "file"):
        raise _fail(directory, f"extra entry {raw['path']!r}: type must be dir, symlink or file")
    mode = raw.get("mode")
    owner = str(raw.get("owner", "0:0"))
    content = raw.get("content")
    if kind == "file" and raw.get("source") is not None:  # a stand-in tool shared by fixtures (_shared/stand-ins)
        src = (directory / str(raw["source"])).resolve()
        if not src.is_relative_to(directory.parent.resolve()) or not src.is_file():
            raise _fail(directory, f"extra entry {raw['path']!r}: source {raw['source']!r} is not a file of the fixtures")
        content = src.read_text(encoding="utf-8")
    uid, _, gid = owner.partition(":")
    try:
        return Extra(path=str(raw["path"]).strip("/"), type=kind, mode=int(str(mode), 8) if mode is not None else None,
                     uid=int(uid), gid=int(gid or uid), target=str(raw.get("target", "")), content=content)
    except ValueError:
        raise _fail(directory, f"extra entry {raw['path']!r}: bad mode or owner") from None


@lru_cache(maxsize=256)
def _files(fx: Fixture) -> tuple[FixtureFile, ...]:
    members: dict[str, FixtureFile] = {}
    for layer in fx.layers:
        for dirpath, dirnames, filenames in os.walk(layer):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, layer)
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    members[rel] = FixtureFile(path=rel, type="symlink", mode=0o777, linkname=os.readlink(full))
                elif stat.S_ISDIR(st.st_mode):
                    if rel in members and members[rel].type != "dir":
                        raise ConfigError(f"fixture {fx.reference}: {rel} is a directory in {layer} but not below")
                    members.setdefault(rel, FixtureFile(path=rel, type="dir", mode=0o755))
                else:
                    mode = 0o755 if st.st_mode & 0o100 else 0o644
                    members[rel] = FixtureFile(path=rel, type="file", mode=mode, size=st.st_size, source=Path(full))
    for ex in fx.extras:
        old = members.get(ex.path)
        if ex.type == "symlink":
            members[ex.path] = FixtureFile(path=ex.path, type="symlink", mode=0o777, uid=ex.uid, gid=ex.gid,
                                           linkname=ex.target)
        elif ex.type == "file" and ex.content is not None:
            data = ex.content.encode()
            members[ex.path] = FixtureFile(path=ex.path, type="file", mode=ex.mode or 0o644, uid=ex.uid, gid=ex.gid,
                                           size=len(data), data=data)
        elif old is not None:  # owner/mode override of a tree member
            members[ex.path] = FixtureFile(path=old.path, type=old.type, mode=ex.mode if ex.mode is not None else old.mode,
                                           uid=ex.uid, gid=ex.gid, size=old.size, linkname=old.linkname,
                                           source=old.source)
        elif ex.type == "dir":
            members[ex.path] = FixtureFile(path=ex.path, type="dir", mode=ex.mode if ex.mode is not None else 0o755,
                                           uid=ex.uid, gid=ex.gid)
        else:
            raise ConfigError(f"fixture {fx.reference}: extra file {ex.path!r} has no content and no tree file")
    for pad in fx.padding:
        for path, size in pad.parts():
            members[path] = FixtureFile(path=path, type="file", mode=0o644, size=size, padding_seed=pad.seed)
    # every parent directory exists
    for path in list(members):
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in members:
                members[parent] = FixtureFile(path=parent, type="dir", mode=0o755)
            elif members[parent].type != "dir":
                raise ConfigError(f"fixture {fx.reference}: {parent} is not a directory but holds {path}")
    return tuple(members[k] for k in sorted(members))
