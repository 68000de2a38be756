"""The OpenAPI document in version 3.0 (``/openapi-3.0.json`` and ``.yaml``), made from the 3.1
document that quart-schema builds.

Why: the Go server (Huma) serves both versions, and much tooling still reads 3.0 only (SDK
generators, gateways, and the Swagger UI that ``/docs`` serves from the package, 4.x). The
differences that matter for this document are few and mechanical:

- nullable: 3.1 writes ``anyOf: [X, {type: null}]``; 3.0 writes X with ``nullable: true`` (a
  ``$ref`` cannot carry siblings in 3.0, so it goes inside ``allOf``);
- ``examples`` (a list) in a schema is 3.0's ``example`` (one value); ``const`` is a one-value
  ``enum``; a ``type`` list with ``null`` is ``nullable``; an empty ``required`` list is left out.

Pure: a function from one document to another.
"""

from __future__ import annotations

from typing import Any

OPENAPI_30 = "3.0.3"
_NULL = {"type": "null"}


def to_openapi_30(document: dict[str, Any]) -> dict[str, Any]:
    converted = _convert(document)
    converted["openapi"] = OPENAPI_30
    return converted


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {
        key: (
            {name: _convert(schema) for name, schema in value.items()}
            if key == "properties" and isinstance(value, dict)
            else _convert(value)
        )
        for key, value in node.items()
    }
    return _schema_30(node)


def _schema_30(node: dict[str, Any]) -> dict[str, Any]:
    # A list under "examples" is the schema keyword (this document has no media-type examples,
    # which are a map); property names never reach here (see "properties" above).
    if isinstance(node.get("examples"), list):
        examples = node.pop("examples")
        if examples:
            node["example"] = examples[0]
    if node.get("required") == []:  # 3.0 wants at least one name in a required list
        del node["required"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    kind = node.get("type")
    if isinstance(kind, list):
        others = [k for k in kind if k != "null"]
        if len(others) < len(kind):
            node["nullable"] = True
        node["type"] = others[0] if len(others) == 1 else others
    branches = node.get("anyOf")
    if isinstance(branches, list) and _NULL in branches:
        rest = [branch for branch in branches if branch != _NULL]
        del node["anyOf"]
        if len(rest) == 1:
            (only,) = rest
            if "$ref" in only:
                node["allOf"] = [only]
            else:
                node = {**only, **node}
        else:
            node["anyOf"] = rest
        node["nullable"] = True
    return node
