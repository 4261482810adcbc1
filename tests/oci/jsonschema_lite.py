"""A small draft-04 JSON Schema validator for the OCI schemas (no jsonschema dependency allowed).

Supports: type, properties, required, items, additionalProperties, patternProperties, pattern, enum, minimum,
maximum, minItems, oneOf, anyOf, allOf, format date-time, and $ref to other files in this folder or #/pointers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent / "schema"
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / name).read_text())


def _resolve(ref: str, current_file: str) -> tuple[dict[str, Any], str]:
    file_part, _, pointer = ref.partition("#")
    file_name = file_part or current_file
    node: Any = load_schema(file_name)
    for part in [p for p in pointer.split("/") if p]:
        node = node[part]
    return node, file_name


def errors(value: Any, schema: dict[str, Any], *, file: str, path: str = "$") -> list[str]:
    """Every violation of ``schema`` by ``value`` (empty list: valid)."""
    out: list[str] = []
    if "$ref" in schema:
        target, target_file = _resolve(schema["$ref"], file)
        return errors(value, target, file=target_file, path=path)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            return [f"{path}: expected {'/'.join(types)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time" and not _DATE_TIME.match(value):
            out.append(f"{path}: {value!r} is not a date-time")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{path}: {value} > maximum {schema['maximum']}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(f"{path}: fewer than {schema['minItems']} items")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                out.extend(errors(item, schema["items"], file=file, path=f"{path}[{i}]"))
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{path}: missing required {key!r}")
        props = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        for key, item in value.items():
            matched = False
            if key in props:
                matched = True
                out.extend(errors(item, props[key], file=file, path=f"{path}.{key}"))
            for pattern, sub in patterns.items():
                if re.search(pattern, key):
                    matched = True
                    out.extend(errors(item, sub, file=file, path=f"{path}.{key}"))
            extra = schema.get("additionalProperties", True)
            if not matched:
                if extra is False:
                    out.append(f"{path}: unexpected property {key!r}")
                elif isinstance(extra, dict):
                    out.extend(errors(item, extra, file=file, path=f"{path}.{key}"))
    if "allOf" in schema:
        for sub in schema["allOf"]:
            out.extend(errors(value, sub, file=file, path=path))
    if "anyOf" in schema and not any(not errors(value, s, file=file, path=path) for s in schema["anyOf"]):
        out.append(f"{path}: matches none of anyOf")
    if "oneOf" in schema:
        ok = sum(1 for s in schema["oneOf"] if not errors(value, s, file=file, path=path))
        if ok != 1:
            out.append(f"{path}: matches {ok} of oneOf (need exactly 1)")
    return out


SCHEMAS = {
    "config": "config-schema.json",
    "manifest": "image-manifest-schema.json",
    "index": "image-index-schema.json",
    "layout": "image-layout-schema.json",
    "descriptor": "content-descriptor.json",
}


def validate(value: Any, kind: str) -> list[str]:
    """Violations of the OCI schema ``kind`` (config, manifest, index, layout, descriptor)."""
    name = SCHEMAS[kind]
    return errors(value, load_schema(name), file=name)


def validate_bytes(data: bytes, kind: str) -> list[str]:
    return validate(json.loads(data), kind)
