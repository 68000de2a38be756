"""Bearer tokens with scopes, checked in front of everything the node serves.

``BearerAuth`` wraps the whole ASGI application (fast path and Quart routes alike, HTTP and
WebSocket), so every request is judged by the one table of doq/api/access.py before any handler
runs. With no token configured it is not installed at all and the API is open, as the Go server's
(docs/operations.md, "Security", says how to close it).

Tokens come from a file (``--http.tokens_file``) or the environment (``DOQ_HTTP_TOKENS``), one per
line: ``<token> <scope>[,<scope>...]``. Only SHA-256 digests of the tokens are kept, and a
presented token is compared with every one of them with ``hmac.compare_digest``, so neither the
time taken nor an early exit says how much of a token was right. No token is ever logged: errors
name a line number, never its text.

A follower relays the client's Authorization header to the leader (doq/api/forwarding.py), which
judges it again with the same table: a hop header proves nothing, since any client can write one.
Every node must therefore hold the same tokens.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs

from doq.api.access import OPEN, Scope, requirement
from doq.api.errors import ERROR_MODEL, ApiProblem, problem_asgi_headers, problem_body
from doq.api.links import schema_base_of_scope, schema_url_at

TOKEN_CHARS_MIN = 16  # a shorter token can be guessed; refused at start-up
TOKEN_CHARS_MAX = 256
WWW_AUTHENTICATE = 'Bearer realm="doq"'
_BEARER = b"bearer "

Scope_ = dict[str, Any]
App = Callable[[Scope_, Any, Any], Awaitable[None]]


class TokenError(ValueError):
    """The token table cannot be used; the message never contains a token."""


@attrs.frozen(repr=False)
class TokenTable:
    """SHA-256 digest of each token -> its scopes (``admin`` implies every scope)."""

    entries: tuple[tuple[bytes, frozenset[Scope]], ...]
    node_token: str  # an admin token this node presents on its own calls (joining)

    def __repr__(self) -> str:
        return f"TokenTable({len(self.entries)} tokens)"

    @classmethod
    def parse(cls, lines: Iterable[str], source: str) -> TokenTable:
        entries: list[tuple[bytes, frozenset[Scope]]] = []
        node_token = ""
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            token, scopes = _parse_line(text, f"{source} line {number}")
            digest = _digest(token.encode())
            if any(d == digest for d, _ in entries):
                raise TokenError(f"{source} line {number}: the same token twice")
            entries.append((digest, scopes))
            if Scope.ADMIN in scopes and not node_token:
                node_token = token
        if not entries:
            raise TokenError(f"{source} names no token")
        if not node_token:
            raise TokenError(f"{source}: no token has the admin scope, so nodes could not join")
        return cls(tuple(entries), node_token)

    def scopes_of(self, token: bytes) -> frozenset[Scope] | None:
        """The token's scopes, or None for an unknown token; every entry is compared."""
        digest = _digest(token)
        found: frozenset[Scope] | None = None
        for known, scopes in self.entries:
            if hmac.compare_digest(known, digest):
                found = scopes
        return found


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def _parse_line(text: str, where: str) -> tuple[str, frozenset[Scope]]:
    fields = text.split()
    if len(fields) != 2:
        raise TokenError(f"{where}: expected '<token> <scope>[,<scope>...]'")
    token, scope_list = fields
    if not TOKEN_CHARS_MIN <= len(token) <= TOKEN_CHARS_MAX or not token.isascii():
        raise TokenError(
            f"{where}: a token is {TOKEN_CHARS_MIN} to {TOKEN_CHARS_MAX} ASCII characters"
        )
    try:
        scopes = frozenset(Scope(name) for name in scope_list.split(","))
    except ValueError:
        known = ", ".join(s.value for s in Scope)
        raise TokenError(f"{where}: unknown scope (known: {known})") from None
    return token, scopes


def read_tokens(path: str) -> TokenTable:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read the tokens file {path}: {exc}") from None
    return TokenTable.parse(lines, path)


def tokens_from_text(text: str, source: str) -> TokenTable:
    """Tokens from one string (an environment variable): lines, or entries split by ';'."""
    return TokenTable.parse(text.replace(";", "\n").splitlines(), source)


class BearerAuth:
    """The ASGI wrapper: a request passes when its route is open or its bearer token holds the
    scope the route needs; otherwise 401 (no or unknown token) or 403 (token without the scope),
    as problem documents. Lifespan and other scopes pass untouched."""

    def __init__(self, app: App, tokens: TokenTable) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope_, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = self.refusal(scope)
        if problem is None:
            await self.app(scope, receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
        else:
            await _send_problem(scope, send, problem)

    def refusal(self, scope: Scope_) -> ApiProblem | None:
        method = scope.get("method", "GET")  # a WebSocket upgrade is a GET
        needs = requirement(method, scope["path"])
        if needs is OPEN:
            return None
        token = _bearer_token(scope["headers"])
        if token is None:
            return ApiProblem(401, "this route needs a bearer token", headers=_challenge(""))
        scopes = self.tokens.scopes_of(token)
        if scopes is None:
            challenge = _challenge(', error="invalid_token"')
            return ApiProblem(401, "the bearer token is not valid", headers=challenge)
        assert isinstance(needs, Scope)
        if needs not in scopes and Scope.ADMIN not in scopes:
            return ApiProblem(403, f"the token lacks the '{needs.value}' scope for this route")
        return None


def _challenge(extra: str) -> dict[str, str]:
    return {"WWW-Authenticate": WWW_AUTHENTICATE + extra}


def _bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            if value[: len(_BEARER)].lower() != _BEARER:
                return None
            token = value[len(_BEARER) :].strip()
            return token or None
    return None


async def _send_problem(scope: Scope_, send: Any, problem: ApiProblem) -> None:
    body = problem_body(problem, schema_url_at(schema_base_of_scope(scope), ERROR_MODEL))
    headers = problem_asgi_headers(problem, len(body))
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
