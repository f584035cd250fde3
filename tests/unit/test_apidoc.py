"""The API document's rows from an OpenAPI spec: operations under their tag, types and notes spelled out."""
from __future__ import annotations

from gateway.site.apidoc import describe

SPEC = {
    "info": {"title": "t", "version": "v1", "description": "d"},
    "tags": [{"name": "slips", "description": "Payment slips"}, {"name": "unused"}],
    "paths": {
        "/api/v1/slips/{number}": {
            "parameters": [{"in": "path", "name": "number", "required": True, "schema": {"type": "string"}}],
            "get": {"tags": ["slips"], "summary": "Return a slip.",
                    "parameters": [{"in": "query", "name": "page", "schema": {"type": "integer", "minimum": 1,
                                                                              "default": 1}}],
                    "responses": {"200": {"description": "OK", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Slip"}}}},
                        "default": {"$ref": "#/components/responses/DEFAULT_ERROR"}}},
        },
    },
    "components": {
        "responses": {"DEFAULT_ERROR": {"description": "Default error response", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
        "schemas": {
            "Slip": {"type": "object", "required": ["number"], "properties": {
                "number": {"type": "string", "description": "16 digits"},
                "due_date": {"type": "string", "format": "date", "nullable": True},
                "status": {"type": "string", "enum": ["issued", None]},
                "attempts": {"type": "array", "items": {"$ref": "#/components/schemas/Attempt"}}}},
            "Error": {"type": "object", "properties": {}},
        },
    },
}


def test_operations_sit_under_their_tag_with_path_and_own_parameters() -> None:
    doc = describe(SPEC)
    assert [tag.name for tag in doc.tags] == ["slips"]  # a tag without operations is left out
    (op,) = doc.tags[0].operations
    assert (op.method, op.path, op.summary, op.anchor) == ("GET", "/api/v1/slips/{number}", "Return a slip.",
                                                           "get-api-v1-slips-number")
    assert [(place, p.name, p.required, p.description) for place, p in op.parameters] == [
        ("パス", "number", True, ""), ("クエリ", "page", False, "min 1; default 1")]
    assert [(r.status, r.description, r.schema, r.type) for r in op.responses] == [
        ("200", "OK", "Slip", "application/json Slip"),
        ("default", "Default error response", "Error", "application/json Error")]


def test_schema_fields_spell_out_types_formats_enums_and_nulls() -> None:
    slip = next(s for s in describe(SPEC).schemas if s.name == "Slip")
    fields = {f.name: f for f in slip.fields}
    assert (fields["number"].type, fields["number"].required, fields["number"].description) == (
        "string", True, "16 digits")
    assert (fields["due_date"].type, fields["due_date"].description) == ("string (date)", "may be null")
    assert fields["status"].description == "one of issued, null"
    assert (fields["attempts"].type, fields["attempts"].ref) == ("array of Attempt", "Attempt")
