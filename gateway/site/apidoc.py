"""The OpenAPI document as plain rows for a page: operations by tag, schemas with their fields.

A page rendered on the server from the app's own spec: no script, nothing fetched from a CDN.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")
# Japanese titles of the API's tags, shown before the spec's own English description.
TAG_TITLES = {"funds": "科目", "slips": "納付書", "payments": "オンライン決済", "agency": "収納代行",
              "exceptions": "例外", "reconciliation": "消込・照合"}
PLACES = {"path": "パス", "query": "クエリ", "header": "ヘッダー"}


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # "integer", "string (date)", "array of Attempt", ...
    ref: str | None  # the schema a field points to, for a link
    required: bool
    description: str


@dataclass(frozen=True)
class Schema:
    name: str
    fields: list[Field]


@dataclass(frozen=True)
class Body:
    status: str  # "request", "200", "default", ...
    description: str
    schema: str | None  # a component schema's name
    type: str


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    description: str
    parameters: list[tuple[str, Field]]  # (where, field)
    request: Body | None
    responses: list[Body]
    anchor: str


@dataclass
class Tag:
    name: str
    title: str
    description: str
    operations: list[Operation] = field(default_factory=list)


@dataclass(frozen=True)
class ApiDoc:
    title: str
    version: str
    description: str
    tags: list[Tag]
    schemas: list[Schema]


def describe(spec: dict[str, Any]) -> ApiDoc:
    """Turn an OpenAPI 3 document into rows: each operation under its first tag, in the spec's order."""
    tags = {t["name"]: Tag(t["name"], TAG_TITLES.get(t["name"], t["name"]), t.get("description", ""))
            for t in spec.get("tags", [])}
    responses = spec.get("components", {}).get("responses", {})
    for path, item in spec.get("paths", {}).items():
        for method in (m for m in METHODS if m in item):
            name = (item[method].get("tags") or ["other"])[0]
            tag = tags.setdefault(name, Tag(name, TAG_TITLES.get(name, name), ""))
            tag.operations.append(_operation(method, path, item, responses))
    schemas = [Schema(name, [_field(f, field_schema, f in body.get("required", ()))
                             for f, field_schema in body.get("properties", {}).items()])
               for name, body in sorted(spec.get("components", {}).get("schemas", {}).items())]
    info = spec.get("info", {})
    return ApiDoc(info.get("title", ""), info.get("version", ""), info.get("description", ""),
                  [t for t in tags.values() if t.operations], schemas)


def _operation(method: str, path: str, item: dict[str, Any], responses: dict[str, Any]) -> Operation:
    op = item[method]
    parameters = [*item.get("parameters", []), *op.get("parameters", [])]  # the path's own, then the operation's
    return Operation(
        method=method.upper(), path=path, summary=op.get("summary", ""), description=op.get("description", ""),
        parameters=[(PLACES.get(p["in"], p["in"]), _parameter(p)) for p in parameters],
        request=_body("request", op["requestBody"], responses) if "requestBody" in op else None,
        responses=[_body(status, r, responses) for status, r in sorted(op.get("responses", {}).items())],
        anchor=f"{method}{path}".replace("/", "-").replace("{", "").replace("}", ""))


def _parameter(param: dict[str, Any]) -> Field:
    return _field(param["name"], {**param.get("schema", {}), "description": param.get("description", "")},
                  bool(param.get("required")))


def _field(name: str, schema: dict[str, Any], required: bool) -> Field:
    kind, ref = _type(schema)
    notes = [schema.get("description", "")]
    if "enum" in schema:
        notes.append("one of " + ", ".join("null" if v is None else str(v) for v in schema["enum"]))
    for key, word in (("minimum", "min"), ("maximum", "max"), ("default", "default"), ("minLength", "min length")):
        if key in schema:
            notes.append(f"{word} {schema[key]}")
    if schema.get("nullable"):
        notes.append("may be null")
    return Field(name, kind, ref, required, "; ".join(n for n in notes if n))


def _type(schema: dict[str, Any]) -> tuple[str, str | None]:
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return name, name
    if schema.get("type") == "array":
        inner, ref = _type(schema.get("items", {}))
        return f"array of {inner}", ref
    kind = schema.get("type", "any")
    return (f"{kind} ({schema['format']})" if "format" in schema else kind), None


def _body(status: str, body: dict[str, Any], shared: dict[str, Any]) -> Body:
    if "$ref" in body:
        body = shared.get(_ref_name(body["$ref"]), {})
    content = body.get("content", {})
    media = next(iter(content), "")
    schema = content.get(media, {}).get("schema", {})
    kind, ref = _type(schema) if schema else ("", None)
    return Body(status, body.get("description", ""), ref, f"{media} {kind}".strip() if media else "")


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]
