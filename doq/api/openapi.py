"""The OpenAPI document (quart-schema, from the routes' declared Structs), its YAML form, and
each component served alone as the JSON schema that a body's ``$schema`` names.

quart-schema 0.25 builds a msgspec model's schema by taking the first of the components that
msgspec returns, which is the wrong one when a nested Struct's name sorts first, and it drops the
nested components. The provider here asks msgspec for the model as a ``$ref`` plus every
component it needs, so nested bodies (settings, servers, error details) are described correctly.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

import attrs
import msgspec
from quart_schema import DataSource
from quart_schema.openapi import OpenAPIProvider
from werkzeug.routing import BaseConverter, IntegerConverter, Rule

from doq.api.schemas import ErrorModel
from doq.commands import QUEUE_NAME_CHARS_MAX

REF_TEMPLATE = "#/components/schemas/{name}"
# The Go server's document (Huma) names the path parameters and operations so; SDKs generated from
# either document get the same names. The routes keep their own parameter names (``<name>``).
PATH_PARAMETER_NAMES = {"name": "queue_name", "message_id": "id"}
_Q = "/API/v1/queues/{queue_name}"
GO_OPERATION_IDS = {
    ("post", "/API/v1/cluster/join"): "cluster-join",
    ("post", "/API/v1/cluster/leave"): "cluster-leave",
    ("get", "/API/v1/cluster/servers"): "cluster-servers",
    ("post", "/db/backup"): "db-backup",
    ("post", "/db/restore"): "db-restore",
    ("post", "/API/v1/ids"): "generate-id",
    ("post", "/API/v1/queues"): "create-queue",
    ("get", "/API/v1/queues"): "queues",
    ("put", _Q): "update-queue",
    ("delete", _Q): "delete-queue",
    ("get", _Q): "queue-info",
    ("post", f"{_Q}/messages"): "enqueue",
    ("get", f"{_Q}/messages"): "dequeue",
    ("get", f"{_Q}/messages/{{id}}"): "get",
    ("delete", f"{_Q}/messages/{{id}}"): "delete",
    ("post", f"{_Q}/messages/{{id}}/ack"): "ack",
    ("post", f"{_Q}/messages/{{id}}/nack"): "nack",
    ("post", f"{_Q}/messages/{{id}}/touch"): "touch",
    ("put", f"{_Q}/messages/{{id}}/priority"): "update-priority",
}
# A rule's "<converter(args):name>" parts; quart-schema's own pattern lets "[^:]*" run across an
# earlier "<name>/", which garbles paths with a typed parameter after an untyped one.
# WebSocket routes the document leaves out (none: every stream is documented).
_UNDOCUMENTED_WEBSOCKETS: frozenset[str] = frozenset()
STREAM_ACK_PARAMETER = {
    "name": "ack",
    "in": "query",
    "required": False,
    "description": "true: messages are removed as they are delivered (as a dequeue's `ack`)",
    "schema": {"type": "boolean", "default": False},
}
_RULE_PARAMETER = re.compile(r"<(?:[^:<>]*:)?([^<>]+)>")
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_ENCODINGS = {
    DataSource.JSON: "application/json",
    DataSource.FORM_MULTIPART: "multipart/form-data",
    DataSource.FORM: "application/x-www-form-urlencoded",
}


def model_components(model: type[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a ``$ref`` to the model, every component it needs, itself included)."""
    (ref,), components = msgspec.json.schema_components([model], ref_template=REF_TEMPLATE)
    return ref, components


@attrs.frozen
class OneOfBodies:
    """A success answer that is one of several bodies (a dequeue answers a MessageBody, or with
    ``count`` a DequeuedBody): ``answers(OneOfBodies((A, B)))`` documents both."""

    models: tuple[type[msgspec.Struct], ...]

    def response_object(self) -> tuple[dict[str, Any], dict[str, Any]]:
        refs, components = msgspec.json.schema_components(self.models, ref_template=REF_TEMPLATE)
        description = "; or ".join(
            f"{model.__name__}: {inspect.getdoc(model) or model.__name__}" for model in self.models
        )
        schema = {"oneOf": list(refs)}
        return {"description": description, "content": {"application/json": {"schema": schema}}}, (
            components
        )


class DoqOpenAPIProvider(OpenAPIProvider):
    _cached: dict[str, Any] | None = None

    def schema(self) -> dict[str, Any]:
        # The routes do not change once the app serves: build the document once.
        if self._cached is None:
            self._cached = super().schema()
        return self._cached

    def generate_rules(self) -> Iterable[Rule]:
        """Every documented route, the WebSocket ones too (quart-schema leaves them out)."""
        yield from super().generate_rules()
        for rule in self._app.url_map.iter_rules():
            if rule.websocket and rule.endpoint not in _UNDOCUMENTED_WEBSOCKETS:
                yield rule

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        ((_, operations),) = paths.items()
        path = _RULE_PARAMETER.sub(_document_parameter, rule.rule)
        if rule.websocket:
            operations = {"get": _websocket_operation(operations["get"])}
        for method, operation in operations.items():
            operation["operationId"] = GO_OPERATION_IDS.get(
                (method, path), operation["operationId"]
            )
        return {path: operations}, components

    def operation_id(self, method: str, path: str, func: Any) -> str:
        """doq's own operations: the handler's name in the Go server's style (``cluster-time``)."""
        return str(getattr(func, "__name__", method)).replace("_", "-")

    def build_request_body(
        self, model: type[Any], source: DataSource
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        ref, components = model_components(model)
        body = {"required": True, "content": {_ENCODINGS[source]: {"schema": ref}}}
        return body, components

    def build_response_object(
        self, model: type[Any], headers_model: type[Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if isinstance(model, OneOfBodies):
            return model.response_object()
        ref, components = model_components(model)
        content_type = "application/problem+json" if model is ErrorModel else "application/json"
        description = inspect.getdoc(model) or model.__name__
        return {"description": description, "content": {content_type: {"schema": ref}}}, components

    def build_querystring_parameters(
        self, model: type[Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        _, components = model_components(model)
        properties = components[model.__name__]["properties"]
        parameters = [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in properties.items()
        ]
        return parameters, {}

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        parameter["name"] = PATH_PARAMETER_NAMES.get(name, name)
        schema = parameter["schema"]
        if isinstance(converter, IntegerConverter):
            schema["minimum"] = 0
            if converter.max is not None:
                schema["maximum"] = converter.max
        elif name == "name":
            schema.update(minLength=1, maxLength=QUEUE_NAME_CHARS_MAX)
        return parameter


def _websocket_operation(operation: dict[str, Any]) -> dict[str, Any]:
    """A WebSocket route as OpenAPI can say it: a GET that upgrades (101). Its frames are not
    expressible here; the description points at their definition."""
    operation["parameters"].append(STREAM_ACK_PARAMETER)
    operation["summary"] = "A WebSocket: a streaming consumer and producer"
    operation["description"] = (
        "A GET with `Upgrade: websocket`, answered 101 Switching Protocols; then JSON frames both "
        "ways (credit, enqueue, ack, nack, touch from the client; deliver, results, error from "
        'the server), defined in docs/api.md, "Streams (WebSocket)". Errors after the upgrade '
        "come as an `error` frame and a close code, not as an HTTP status."
    )
    operation["responses"] = {
        "101": {"description": "Switching Protocols: the stream is open (docs/api.md, Streams)"}
    }
    return operation


def _document_parameter(match: re.Match[str]) -> str:
    return "{" + PATH_PARAMETER_NAMES.get(match[1], match[1]) + "}"


def standalone_schema(document: dict[str, Any], name: str) -> dict[str, Any] | None:
    """Component ``name`` as a JSON schema of its own: references point at /schemas/X.json."""
    component = document["components"]["schemas"].get(name)
    if component is None:
        return None
    return {"$schema": JSON_SCHEMA_DIALECT, **_rewrite_refs(component)}


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                value.replace("#/components/schemas/", "/schemas/") + ".json"
                if key == "$ref" and isinstance(value, str)
                else _rewrite_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node
