"""The bodies of the admin UI's endpoints (doq's additions, docs/ui.md): a queue's next messages,
one node's Raft figures, every member's, and a leadership transfer. Declared apart from
doq/api/schemas.py, which holds the Go server's API, so that the two stay easy to tell apart."""

from __future__ import annotations

from typing import Annotated

import msgspec

from doq.api.schemas import MessageBody, NodeId, _Request, _Response

PEEK_LIMIT_MAX = 100


class PeekQuery(msgspec.Struct, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=PEEK_LIMIT_MAX)] = 10


class PeekBody(_Response, kw_only=True):
    """Ready messages in their index's order, none taken (status GOT)."""

    messages: list[MessageBody]


class NodeStatusBody(_Response, kw_only=True):
    """This node's own Raft figures."""

    id: str
    role: str
    term: int
    leader: str | None
    commit_index: int
    applied_index: int
    last_index: int


class MemberBody(msgspec.Struct, kw_only=True):
    """A member as the configuration lists it, with its own figures when it answered
    (``reachable``); ``lag``: entries it has yet to apply, against the most advanced member."""

    id: str
    addr: str
    http_addr: str | None
    suffrage: str
    is_leader: bool
    reachable: bool
    role: str | None = None
    term: int | None = None
    commit_index: int | None = None
    applied_index: int | None = None
    lag: int | None = None


class MembersBody(_Response, kw_only=True):
    members: list[MemberBody]


class TransferRequest(_Request, kw_only=True):
    id: NodeId


class TransferBody(_Response, kw_only=True):
    """The leader was asked to hand over to ``id``; the handover takes a round or two."""

    id: str
