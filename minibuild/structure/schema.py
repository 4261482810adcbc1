"""container-structure-test config files (schemaVersion 2.0.0) as frozen dataclasses, decoded like Go's yaml.v2.

Decoding follows upstream: ``.yaml``/``.yml`` files are decoded strictly (an unknown or duplicate key is an
error), ``.json`` files leniently (unknown keys ignored, keys matched case-insensitively as Go's encoding/json
does); a string field takes any scalar's text as written (``value: 8080`` is ``"8080"``, ``value: yes`` is
``"yes"``); ``shouldExist`` defaults to true and ``uid``/``gid`` to -1 (unchecked); ``cmd``/``entrypoint`` are
None when absent or null and a tuple (possibly empty) otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml

from minibuild.errors import ConfigError
from minibuild.record import record

SUPPORTED_VERSIONS = ("2.0.0",)
UNSET_ID = -1


@record
class EnvVar:
    key: str = ""
    value: str = ""
    is_regex: bool = False


@record
class CommandTest:
    name: str = ""
    setup: tuple[tuple[str, ...], ...] = ()
    teardown: tuple[tuple[str, ...], ...] = ()
    env_vars: tuple[EnvVar, ...] = ()
    exit_code: int = 0
    command: str = ""
    args: tuple[str, ...] = ()
    expected_output: tuple[str, ...] = ()
    excluded_output: tuple[str, ...] = ()
    expected_error: tuple[str, ...] = ()
    excluded_error: tuple[str, ...] = ()


@record
class FileExistenceTest:
    name: str = ""
    path: str = ""
    should_exist: bool = True
    permissions: str = ""
    uid: int = UNSET_ID
    gid: int = UNSET_ID
    is_executable_by: str = ""


@record
class FileContentTest:
    name: str = ""
    path: str = ""
    expected_contents: tuple[str, ...] = ()
    excluded_contents: tuple[str, ...] = ()


@record
class MetadataTest:
    env_vars: tuple[EnvVar, ...] = ()
    unbound_env_vars: tuple[EnvVar, ...] = ()
    exposed_ports: tuple[str, ...] = ()
    unexposed_ports: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    workdir: str = ""
    volumes: tuple[str, ...] = ()
    unmounted_volumes: tuple[str, ...] = ()
    labels: tuple[EnvVar, ...] = ()
    user: str = ""

    @property
    def is_empty(self) -> bool:
        """Upstream skips a metadata test with nothing to check (it is then not counted)."""
        return (not self.env_vars and not self.unbound_env_vars and not self.exposed_ports
                and not self.unexposed_ports and self.entrypoint is None and self.cmd is None and not self.workdir
                and not self.user and not self.volumes and not self.unmounted_volumes and not self.labels)


@record
class LicenseTest:
    debian: bool = False
    files: tuple[str, ...] = ()


@record
class ContainerRunOptions:
    user: str = ""
    privileged: bool = False
    allocate_tty: bool = False
    env_vars: tuple[str, ...] = ()
    env_file: str = ""
    capabilities: tuple[str, ...] = ()
    bind_mounts: tuple[str, ...] = ()


@record
class StructureConfig:
    """One config file."""

    schema_version: str
    source: str = "<config>"
    global_env_vars: tuple[EnvVar, ...] = ()
    command_tests: tuple[CommandTest, ...] = ()
    file_existence_tests: tuple[FileExistenceTest, ...] = ()
    file_content_tests: tuple[FileContentTest, ...] = ()
    metadata_test: MetadataTest = field(default_factory=MetadataTest)
    license_tests: tuple[LicenseTest, ...] = ()
    container_run_options: ContainerRunOptions = field(default_factory=ContainerRunOptions)


# ------------------------------------------------------------------------------------------- decoding
# a value in the neutral form both decoders produce: ("null",), ("scalar", text, tag), ("seq", [..]), ("map", [(k, v)])
Val = tuple[Any, ...]

_BOOL_TRUE = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}
_BOOL_FALSE = {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}


class _DecodeError(Exception):
    pass


def _from_node(node: yaml.Node) -> Val:
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:null":
            return ("null",)
        return ("scalar", node.value, node.tag.rpartition(":")[2])
    if isinstance(node, yaml.SequenceNode):
        return ("seq", [_from_node(n) for n in node.value])
    if isinstance(node, yaml.MappingNode):
        items = []
        seen = set()
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
            if key in seen:
                raise _DecodeError(f'line {k.start_mark.line + 1}: key "{key}" already set in map')
            seen.add(key)
            items.append((key, _from_node(v)))
        return ("map", items)
    raise _DecodeError(f"unsupported YAML node {node!r}")


def _from_json(value: Any) -> Val:
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("scalar", "true" if value else "false", "bool")
    if isinstance(value, int):
        return ("scalar", str(value), "int")
    if isinstance(value, float):
        return ("scalar", repr(value), "float")
    if isinstance(value, str):
        return ("scalar", value, "str")
    if isinstance(value, list):
        return ("seq", [_from_json(v) for v in value])
    if isinstance(value, dict):
        return ("map", [(k, _from_json(v)) for k, v in value.items()])
    raise _DecodeError(f"unsupported JSON value {value!r}")


class _Decoder:
    def __init__(self, strict: bool, lenient_json: bool) -> None:
        self.strict = strict
        self.json = lenient_json

    def string(self, v: Val, where: str) -> str:
        if v[0] == "null":
            return ""
        if v[0] != "scalar" or (self.json and v[2] != "str"):
            raise _DecodeError(f"{where}: cannot unmarshal {self._kind(v)} into a string")
        return str(v[1])

    def boolean(self, v: Val, where: str) -> bool:
        if v[0] == "null":
            return False
        if v[0] == "scalar" and v[2] == "bool":
            return v[1] in _BOOL_TRUE or v[1] == "true"
        raise _DecodeError(f"{where}: cannot unmarshal {self._kind(v)} `{v[1] if v[0] == 'scalar' else ''}` into bool")

    def integer(self, v: Val, where: str, default: int = 0) -> int:
        if v[0] == "null":
            return default
        if v[0] == "scalar" and v[2] == "int":
            try:
                return int(str(v[1]).replace("_", ""), 0)
            except ValueError:
                pass
        raise _DecodeError(f"{where}: cannot unmarshal {self._kind(v)} `{v[1] if v[0] == 'scalar' else ''}` into int")

    def strings(self, v: Val, where: str) -> tuple[str, ...] | None:
        if v[0] == "null":
            return None
        if v[0] != "seq":
            raise _DecodeError(f"{where}: cannot unmarshal {self._kind(v)} into []string")
        return tuple(self.string(x, f"{where}[{i}]") for i, x in enumerate(v[1]))

    def seq(self, v: Val, where: str) -> list[Val]:
        if v[0] == "null":
            return []
        if v[0] != "seq":
            raise _DecodeError(f"{where}: cannot unmarshal {self._kind(v)} into a list")
        return list(v[1])

    def fields(self, v: Val, where: str, known: dict[str, str]) -> dict[str, Val]:
        """Map keys to attribute names (``known``: yaml key -> attr); unknown keys are errors when strict."""
        if v[0] == "null":
            return {}
        if v[0] != "map":
            raise _DecodeError(f"{where}: cannot unmarshal {self._kind(v)} into an object")
        out: dict[str, Val] = {}
        lower = {k.lower(): a for k, a in known.items()}
        for key, val in v[1]:
            attr = known.get(key) if not self.json else lower.get(str(key).lower())
            if attr is None:
                if self.strict:
                    from minibuild.dockerfile.suggest import with_suggestion

                    raise _DecodeError(with_suggestion(f"{where}: field {key} not found in type", str(key), known,
                                                       case_sensitive=True))
                continue
            out[attr] = val
        return out

    @staticmethod
    def _kind(v: Val) -> str:
        if v[0] == "scalar":
            return f"!!{v[2]}"
        return {"seq": "!!seq", "map": "!!map", "null": "!!null"}[v[0]]

    # -- typed records
    def env(self, v: Val, where: str) -> EnvVar:
        f = self.fields(v, where, {"key": "key", "value": "value", "isRegex": "is_regex"})
        return EnvVar(key=self.string(f.get("key", ("null",)), where + ".key"),
                      value=self.string(f.get("value", ("null",)), where + ".value"),
                      is_regex=self.boolean(f.get("is_regex", ("null",)), where + ".isRegex"))

    def envs(self, v: Val, where: str) -> tuple[EnvVar, ...]:
        return tuple(self.env(x, f"{where}[{i}]") for i, x in enumerate(self.seq(v, where)))

    def commands(self, v: Val, where: str) -> tuple[tuple[str, ...], ...]:
        return tuple(self.strings(x, f"{where}[{i}]") or () for i, x in enumerate(self.seq(v, where)))


_COMMAND_KEYS = {"name": "name", "setup": "setup", "teardown": "teardown", "envVars": "env_vars",
                 "exitCode": "exit_code", "command": "command", "args": "args", "expectedOutput": "expected_output",
                 "excludedOutput": "excluded_output", "expectedError": "expected_error",
                 "excludedError": "excluded_error"}
_EXIST_KEYS = {"name": "name", "path": "path", "shouldExist": "should_exist", "permissions": "permissions",
               "uid": "uid", "gid": "gid", "isExecutableBy": "is_executable_by"}
_CONTENT_KEYS = {"name": "name", "path": "path", "expectedContents": "expected_contents",
                 "excludedContents": "excluded_contents"}
_META_KEYS = {"envVars": "env_vars", "unboundEnvVars": "unbound_env_vars", "exposedPorts": "exposed_ports",
              "unexposedPorts": "unexposed_ports", "entrypoint": "entrypoint", "cmd": "cmd", "workdir": "workdir",
              "volumes": "volumes", "unmountedVolumes": "unmounted_volumes", "labels": "labels", "user": "user"}
_LICENSE_KEYS = {"debian": "debian", "files": "files"}
_RUNOPT_KEYS = {"user": "user", "privileged": "privileged", "allocateTty": "allocate_tty", "envVars": "env_vars",
                "envFile": "env_file", "capabilities": "capabilities", "bindMounts": "bind_mounts"}
_TOP_KEYS = {"schemaVersion": "schema_version", "globalEnvVars": "global_env_vars", "commandTests": "command_tests",
             "fileExistenceTests": "file_existence_tests", "fileContentTests": "file_content_tests",
             "metadataTest": "metadata_test", "licenseTests": "license_tests",
             "containerRunOptions": "container_run_options"}
_NULL: Val = ("null",)


def _test_fields(dec: _Decoder, item: Val, kind: str, i: int, known: dict[str, str]) -> tuple[str, dict[str, Val]]:
    """(where, fields) of one test of a list: ``where`` names the list, the index and the test's name, so every
    error about the test says which one it is (``commandTests[2] "say hi".expectedOutput: ...``)."""
    w = f"{kind}[{i}]"
    if item[0] == "map":
        for key, val in item[1]:
            if key == "name" and val[0] == "scalar":
                w += f' "{val[1]}"'
    return w, dec.fields(item, w, known)


def _decode(top: Val, dec: _Decoder, source: str) -> StructureConfig:
    f = dec.fields(top, "config", _TOP_KEYS)
    version = dec.string(f.get("schema_version", _NULL), "schemaVersion")
    if not version:
        raise ConfigError(f"{source}: Please provide schema version")
    if version not in SUPPORTED_VERSIONS:
        raise ConfigError(f"{source}: Unsupported schema version: {version} (minibuild runs schemaVersion 2.0.0)")
    def g(d: Mapping[str, Val], k: str) -> Val:
        return d.get(k, _NULL)

    cmds: list[CommandTest] = []
    for i, item in enumerate(dec.seq(g(f, "command_tests"), "commandTests")):
        w, c = _test_fields(dec, item, "commandTests", i, _COMMAND_KEYS)
        cmds.append(CommandTest(
            name=dec.string(g(c, "name"), w + ".name"), setup=dec.commands(g(c, "setup"), w + ".setup"),
            teardown=dec.commands(g(c, "teardown"), w + ".teardown"), env_vars=dec.envs(g(c, "env_vars"), w + ".envVars"),
            exit_code=dec.integer(g(c, "exit_code"), w + ".exitCode"),
            command=dec.string(g(c, "command"), w + ".command"), args=dec.strings(g(c, "args"), w + ".args") or (),
            expected_output=dec.strings(g(c, "expected_output"), w + ".expectedOutput") or (),
            excluded_output=dec.strings(g(c, "excluded_output"), w + ".excludedOutput") or (),
            expected_error=dec.strings(g(c, "expected_error"), w + ".expectedError") or (),
            excluded_error=dec.strings(g(c, "excluded_error"), w + ".excludedError") or ()))
    exists: list[FileExistenceTest] = []
    for i, item in enumerate(dec.seq(g(f, "file_existence_tests"), "fileExistenceTests")):
        w, e = _test_fields(dec, item, "fileExistenceTests", i, _EXIST_KEYS)
        exists.append(FileExistenceTest(
            name=dec.string(g(e, "name"), w + ".name"), path=dec.string(g(e, "path"), w + ".path"),
            should_exist=dec.boolean(e["should_exist"], w + ".shouldExist") if "should_exist" in e else True,
            permissions=dec.string(g(e, "permissions"), w + ".permissions"),
            uid=dec.integer(e["uid"], w + ".uid") if "uid" in e else UNSET_ID,
            gid=dec.integer(e["gid"], w + ".gid") if "gid" in e else UNSET_ID,
            is_executable_by=dec.string(g(e, "is_executable_by"), w + ".isExecutableBy")))
    contents: list[FileContentTest] = []
    for i, item in enumerate(dec.seq(g(f, "file_content_tests"), "fileContentTests")):
        w, c = _test_fields(dec, item, "fileContentTests", i, _CONTENT_KEYS)
        contents.append(FileContentTest(
            name=dec.string(g(c, "name"), w + ".name"), path=dec.string(g(c, "path"), w + ".path"),
            expected_contents=dec.strings(g(c, "expected_contents"), w + ".expectedContents") or (),
            excluded_contents=dec.strings(g(c, "excluded_contents"), w + ".excludedContents") or ()))
    m = dec.fields(g(f, "metadata_test"), "metadataTest", _META_KEYS)
    meta = MetadataTest(
        env_vars=dec.envs(g(m, "env_vars"), "metadataTest.envVars"),
        unbound_env_vars=dec.envs(g(m, "unbound_env_vars"), "metadataTest.unboundEnvVars"),
        exposed_ports=dec.strings(g(m, "exposed_ports"), "metadataTest.exposedPorts") or (),
        unexposed_ports=dec.strings(g(m, "unexposed_ports"), "metadataTest.unexposedPorts") or (),
        entrypoint=dec.strings(g(m, "entrypoint"), "metadataTest.entrypoint"),
        cmd=dec.strings(g(m, "cmd"), "metadataTest.cmd"),
        workdir=dec.string(g(m, "workdir"), "metadataTest.workdir"),
        volumes=dec.strings(g(m, "volumes"), "metadataTest.volumes") or (),
        unmounted_volumes=dec.strings(g(m, "unmounted_volumes"), "metadataTest.unmountedVolumes") or (),
        labels=dec.envs(g(m, "labels"), "metadataTest.labels"),
        user=dec.string(g(m, "user"), "metadataTest.user"))
    licenses: list[LicenseTest] = []
    for i, item in enumerate(dec.seq(g(f, "license_tests"), "licenseTests")):
        w = f"licenseTests[{i}]"
        lt = dec.fields(item, w, _LICENSE_KEYS)
        licenses.append(LicenseTest(debian=dec.boolean(g(lt, "debian"), w + ".debian"),
                                    files=dec.strings(g(lt, "files"), w + ".files") or ()))
    r = dec.fields(g(f, "container_run_options"), "containerRunOptions", _RUNOPT_KEYS)
    runopts = ContainerRunOptions(
        user=dec.string(g(r, "user"), "containerRunOptions.user"),
        privileged=dec.boolean(g(r, "privileged"), "containerRunOptions.privileged"),
        allocate_tty=dec.boolean(g(r, "allocate_tty"), "containerRunOptions.allocateTty"),
        env_vars=dec.strings(g(r, "env_vars"), "containerRunOptions.envVars") or (),
        env_file=dec.string(g(r, "env_file"), "containerRunOptions.envFile"),
        capabilities=dec.strings(g(r, "capabilities"), "containerRunOptions.capabilities") or (),
        bind_mounts=dec.strings(g(r, "bind_mounts"), "containerRunOptions.bindMounts") or ())
    return StructureConfig(
        schema_version=version, source=source, global_env_vars=dec.envs(g(f, "global_env_vars"), "globalEnvVars"),
        command_tests=tuple(cmds), file_existence_tests=tuple(exists), file_content_tests=tuple(contents),
        metadata_test=meta, license_tests=tuple(licenses), container_run_options=runopts)


def parse_config(text: str, *, filename: str = "config.yaml") -> StructureConfig:
    """Decode one config file's text; the suffix of ``filename`` picks YAML (strict) or JSON (lenient)."""
    try:
        if filename.endswith(".json"):
            try:
                top = _from_json(json.loads(text))
            except ValueError as exc:
                raise ConfigError(f"{filename}: {exc}") from None
            dec = _Decoder(strict=False, lenient_json=True)
        elif filename.endswith((".yaml", ".yml")):
            try:
                node = yaml.compose(text, Loader=yaml.SafeLoader)
            except yaml.YAMLError as exc:
                raise ConfigError(f"{filename}: invalid YAML: {exc}") from None
            top = _from_node(node) if node is not None else _NULL
            dec = _Decoder(strict=True, lenient_json=False)
        else:
            raise ConfigError(f"{filename}: Please provide valid JSON or YAML config file (.yaml, .yml or .json)")
        return _decode(top, dec, filename)
    except _DecodeError as exc:
        raise ConfigError(f"{filename}: error unmarshalling config: {exc}") from None


def load_config(path: Path | str) -> StructureConfig:
    """Read and decode a config file (ConfigError naming the file on any problem)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read structure-test config {p}: {exc.strerror or exc}") from None
    return dataclass_replace_source(parse_config(text, filename=p.name), str(p))


def dataclass_replace_source(cfg: StructureConfig, source: str) -> StructureConfig:
    import dataclasses

    return dataclasses.replace(cfg, source=source)
