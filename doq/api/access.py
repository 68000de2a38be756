"""Which credential each route of the API needs: one table for every way in (docs/api.md,
"Authentication").

A request is matched on its method and path, in table order, before any route or the fast path
sees it; a WebSocket upgrade is matched as a GET. The first rule that matches decides. A path that
no rule names needs ``admin``: a route added later is closed until someone puts it in this table,
never open by omission. ``admin`` holds every scope.

Open to anyone (no token): the health probes (a kubelet has no token, and a refused probe would
restart the pod), the nodes' clock probe (a timestamp, and the nodes call it on each other),
the API's own description (OpenAPI, docs page, JSON schemas), and the admin UI's static page and
files (a browser cannot send a token with a page load; the page sends it on its API calls).
"""

from __future__ import annotations

import enum
import re

import attrs


class Scope(enum.Enum):
    ADMIN = "admin"  # queues, cluster membership, backup and restore, message management
    PRODUCE = "produce"  # enqueue, and the IDs producers stamp messages with
    CONSUME = "consume"  # dequeue, read, ack, nack, touch
    METRICS = "metrics"  # /metrics: a scraper's token need not be able to dequeue


class Open(enum.Enum):
    """A route anyone may call."""

    OPEN = "open"


OPEN = Open.OPEN
Requirement = Scope | Open

_NAME = r"[^/]+"
_ID = r"[0-9]+"


@attrs.frozen
class Rule:
    methods: frozenset[str]
    path: re.Pattern[str]
    needs: Requirement


def _rule(methods: str, path: str, needs: Requirement) -> Rule:
    return Rule(frozenset(methods.split()), re.compile(rf"(?:{path})\Z"), needs)


_QUEUE = rf"/API/v1/queues/{_NAME}"
_MESSAGE = rf"{_QUEUE}/messages/{_ID}"

RULES: tuple[Rule, ...] = (
    _rule("GET HEAD", r"/livez|/readyz|/healthz", OPEN),
    _rule("GET HEAD", r"/API/v1/cluster/time", OPEN),
    _rule("GET HEAD", r"/openapi\.json|/openapi\.yaml|/openapi-3\.0\.(json|yaml)", OPEN),
    _rule("GET HEAD", r"/docs|/docs/assets/[^/]+|/schemas/[^/]+\.json", OPEN),
    # The admin UI's page and static files hold no data (docs/ui.md): the page asks for a token
    # and sends it on each API call it makes, which are judged like any other.
    _rule("GET HEAD", r"/|/ui/[^/]+", OPEN),
    _rule("GET HEAD", r"/metrics", Scope.METRICS),
    _rule("POST", rf"{_QUEUE}/messages(/batch)?", Scope.PRODUCE),
    _rule("POST", r"/API/v1/ids", Scope.PRODUCE),
    _rule("GET HEAD", rf"{_QUEUE}/messages", Scope.CONSUME),
    _rule("GET HEAD", _MESSAGE, Scope.CONSUME),
    _rule("GET HEAD", rf"{_QUEUE}/peek", Scope.CONSUME),
    _rule("POST", rf"({_MESSAGE}|{_QUEUE}/messages)/(ack|nack|touch)", Scope.CONSUME),
    _rule("DELETE", _MESSAGE, Scope.ADMIN),
    _rule("PUT", rf"{_MESSAGE}/priority", Scope.ADMIN),
    # Queues, cluster membership (join, leave, servers), backup and restore: management.
)


def requirement(method: str, path: str) -> Requirement:
    """What ``method path`` needs; ``admin`` when no rule names it."""
    for rule in RULES:
        if method in rule.methods and rule.path.match(path):
            return rule.needs
    return Scope.ADMIN
