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
from typing import Any

import attrs
import msgspec
from quart_schema import DataSource
from quart_schema.openapi import OpenAPIProvider
from werkzeug.routing import BaseConverter, IntegerConverter, Rule

from doq.api.schemas import ErrorModel
from doq.commands import QUEUE_NAME_CHARS_MAX

REF_TEMPLATE = "#/components/schemas/{name}"
# A rule's "<converter(args):name>" parts; quart-schema's own pattern lets "[^:]*" run across an
# earlier "<name>/", which garbles paths with a typed parameter after an untyped one.
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

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        ((_, operations),) = paths.items()
        return {_RULE_PARAMETER.sub(r"{\1}", rule.rule): operations}, components

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
        schema = parameter["schema"]
        if isinstance(converter, IntegerConverter):
            schema["minimum"] = 0
            if converter.max is not None:
                schema["maximum"] = converter.max
        elif name == "name":
            schema.update(minLength=1, maxLength=QUEUE_NAME_CHARS_MAX)
        return parameter


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
