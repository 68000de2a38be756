"""Request input: JSON bodies decoded and validated by their schema class, query and path values.

``accepts(Model)`` declares a route's body once: quart-schema documents it in the OpenAPI
document, and the route receives ``body=`` decoded by msgspec straight from the raw bytes into
the Struct (strict types, ranges, lengths, required fields, unknown fields refused). That is one
C call on the hot path instead of parsing to dicts and converting; a failure becomes API.md's
422 problem with the failing location (``body.priority``) and the offending value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from quart import request
from quart_schema import DataSource, document_querystring, document_request

from doq.api.errors import ApiProblem, validation_problem
from doq.api.schemas import ErrorDetail
from doq.api.serving import parse_bool_query, parse_count_query, parse_wait_query
from doq.commands import QUEUE_NAME_CHARS_MAX

T = TypeVar("T", bound=msgspec.Struct)
Handler = Callable[..., Awaitable[Any]]

BODY_REQUIRED = "request body is required"
_ERROR_AT = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.DOTALL)
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<field>.*)`$", re.DOTALL)
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<field>.*)`$", re.DOTALL)
_NO_VALUE = object()

_decoders: dict[type, msgspec.json.Decoder[Any]] = {}


def decoder_for(model: type[T]) -> msgspec.json.Decoder[T]:
    decoder = _decoders.get(model)
    if decoder is None:
        decoder = _decoders[model] = msgspec.json.Decoder(model)
    return decoder


def decode_body(model: type[T], data: bytes) -> T:
    """The body as ``model``; raises ``ApiProblem`` (400 empty or not JSON, 422 invalid)."""
    if not data.strip():
        raise ApiProblem(400, BODY_REQUIRED)
    try:
        return decoder_for(model).decode(data)
    except msgspec.ValidationError as exc:
        if "got `float`" not in str(exc):
            raise _validation_failure(str(exc), data) from None
        return _decode_with_integral_floats(model, data)
    except msgspec.DecodeError as exc:
        raise ApiProblem(
            400, "request body is not valid JSON", [ErrorDetail(message=str(exc))]
        ) from None


def _decode_with_integral_floats(model: type[T], data: bytes) -> T:
    """JSON Schema counts 1.0 as an integer (clients that only have doubles send it): the rare
    body that holds one is decoded again with integral floats made ints."""
    generic = msgspec.json.decode(data)
    try:
        return msgspec.convert(_integral_floats_as_ints(generic), model, strict=True)
    except msgspec.ValidationError as exc:
        raise _validation_failure(str(exc), data) from None


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    return value


def accepts(model: type[msgspec.Struct]) -> Callable[[Handler], Handler]:
    """Declare the route's JSON body: documented, then decoded into ``body=`` for the route."""

    def decorator(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def with_body(**kwargs: Any) -> Any:
            data = await request.get_data()
            assert isinstance(data, bytes)
            return await handler(body=decode_body(model, data), **kwargs)

        return document_request(model, source=DataSource.JSON)(with_body)

    return decorator


def dequeue_query(model: type[msgspec.Struct]) -> Callable[[Handler], Handler]:
    """Declare ``?ack=bool&count=N&wait=S`` (documented by ``model``) and pass them as ``ack=``,
    ``count=`` (None when absent) and ``wait_s=`` (doq/api/serving.py reads them)."""

    def decorator(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def with_query(**kwargs: Any) -> Any:
            args = request.args
            return await handler(
                ack=parse_bool_query("ack", args.get("ack")),
                count=parse_count_query(args.get("count")),
                wait_s=parse_wait_query(args.get("wait")),
                **kwargs,
            )

        return document_querystring(model)(with_query)

    return decorator


def requested_wait_s() -> float:
    """The request's ``?wait=`` (0 when absent or invalid: the route itself refuses that)."""
    try:
        return parse_wait_query(request.args.get("wait"))
    except ApiProblem:
        return 0.0


def receipt_query(model: type[msgspec.Struct]) -> Callable[[Handler], Handler]:
    """Declare ``?receipt=`` (documented by ``model``) and pass it as ``receipt=`` (None when
    absent or empty)."""

    def decorator(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def with_receipt(**kwargs: Any) -> Any:
            return await handler(receipt=request.args.get("receipt") or None, **kwargs)

        return document_querystring(model)(with_receipt)

    return decorator


def check_queue_name(name: str) -> str:
    if len(name) > QUEUE_NAME_CHARS_MAX:
        raise validation_problem(
            f"expected length <= {QUEUE_NAME_CHARS_MAX}", "path.name", name[:64] + "..."
        )
    return name


def _validation_failure(text: str, data: bytes) -> ApiProblem:
    match = _ERROR_AT.match(text)
    assert match is not None  # the pattern matches any string
    message, path = match["message"], match["path"] or "$"
    parts = _path_parts(path)
    location = "body" + path[1:].split("[...]", 1)[0]
    if missing := _MISSING_FIELD.match(message):
        value = _value_at(data, parts)
        return _problem(
            f"expected required property {missing['field']} to be present", location, value
        )
    if unknown := _UNKNOWN_FIELD.match(message):
        field = unknown["field"]
        value = _value_at(data, [*parts, field])
        return _problem("unexpected property", f"{location}.{field}", value)
    value = _value_at(data, parts)
    return _problem(message.replace("`", "").lower(), location, value)


def _problem(message: str, location: str, value: Any) -> ApiProblem:
    return validation_problem(message, location, None if value is _NO_VALUE else value)


def _path_parts(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for match in _PATH_PART.finditer(path):
        key, index = match.group(1), match.group(2)
        if key is not None:
            parts.append(key)
        elif index is not None:
            parts.append(int(index))
        else:
            return parts  # a map key msgspec does not name: stop at the map
    return parts


def _value_at(data: bytes, parts: list[str | int]) -> Any:
    try:
        value: Any = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return _NO_VALUE
    for part in parts:
        in_list = isinstance(part, int) and isinstance(value, list) and part < len(value)
        in_object = isinstance(part, str) and isinstance(value, dict) and part in value
        if not (in_list or in_object):
            return _NO_VALUE
        value = value[part]
    return value
