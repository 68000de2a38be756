"""The endpoints behind the admin UI (docs/ui.md), doq's additions to the Go server's API.

- ``GET /API/v1/queues/{name}/peek?limit=N``: the next ready messages, none taken (a read, served
  by the leader like the other reads).
- ``GET /API/v1/cluster/node``: this node's own Raft figures, answered locally.
- ``GET /API/v1/cluster/members``: every member with its role, term, applied index and lag,
  gathered by the node that is asked from each member's ``/API/v1/cluster/node`` over HTTP in
  parallel, so that the UI works through any node, even where the browser reaches only one.
- ``POST /API/v1/cluster/transfer {"id"}``: leadership to another voter (relayed to the leader).
Removing a member is the Go server's ``POST /API/v1/cluster/leave``.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import trio
from quart import Quart, Response, request
from quart_schema import document_querystring, tag

from doq.api.context import ApiContext
from doq.api.links import schema_url
from doq.api.problems import validation_problem
from doq.api.render import MESSAGE_BODY, answers, fails, json_response, message_body
from doq.api.schemas_admin import (
    PEEK_LIMIT_MAX,
    MemberBody,
    MembersBody,
    NodeStatusBody,
    PeekBody,
    PeekQuery,
    TransferBody,
    TransferRequest,
)
from doq.api.validation import accepts, check_queue_name
from doq.service import NodeStatus, ServerInfo

NODE_PATH = "/API/v1/cluster/node"
MEMBER_STATUS_TIMEOUT_S = 1.0  # a member slower than this is shown unreachable
_NODE_DECODER = msgspec.json.Decoder(NodeStatusBody)


def register_admin_routes(app: Quart, api: ApiContext) -> None:
    served = api.dispatcher.served
    service = api.service

    @tag(["Messages"])
    @answers(PeekBody)
    @fails(404, 422, 503)
    @served(is_write=False)
    async def peek(name: str) -> Response:
        """The next ready messages, none taken (doq's addition, for the admin UI)

        By priority on a delayed queue (those whose time has not come included); group after
        group on a fair queue."""
        limit = _limit(request.args.get("limit"))
        found = await service.peek(check_queue_name(name), limit)
        url = schema_url(MESSAGE_BODY)
        messages = [message_body("GOT", stored.message, url) for stored in found]
        return json_response(PeekBody(schema=schema_url("PeekBody"), messages=messages))

    @tag(["Cluster"])
    @answers(NodeStatusBody)
    @fails(503)
    async def node() -> Response:
        """This node's own Raft figures, answered locally (doq's addition)"""
        return json_response(_node_body(service.node_status()))

    @tag(["Cluster"])
    @answers(MembersBody)
    async def members() -> Response:
        """Every member with its role, term, applied index and lag (doq's addition)"""
        servers = service.servers()
        figures: dict[str, NodeStatusBody] = {}
        async with (
            httpx.AsyncClient(timeout=MEMBER_STATUS_TIMEOUT_S) as client,
            trio.open_nursery() as nursery,
        ):
            for server in servers:
                nursery.start_soon(_ask_member, service, client, server, figures)
        newest = max((f.applied_index for f in figures.values()), default=0)
        body = MembersBody(
            schema=schema_url("MembersBody"),
            members=[_member(server, figures.get(server.id), newest) for server in servers],
        )
        return json_response(body)

    @tag(["Cluster"])
    @answers(TransferBody)
    @fails(409, 422, 503)
    @served(is_write=True)
    @accepts(TransferRequest)
    async def transfer(body: TransferRequest) -> Response:
        """Hand leadership to another voter (doq's addition)"""
        await service.transfer_leadership(body.id)
        return json_response(TransferBody(schema=schema_url("TransferBody"), id=body.id))

    document_querystring(PeekQuery)(peek)
    app.add_url_rule("/API/v1/queues/<name>/peek", view_func=peek, methods=["GET"])
    app.add_url_rule(NODE_PATH, view_func=node, methods=["GET"])
    app.add_url_rule("/API/v1/cluster/members", view_func=members, methods=["GET"])
    app.add_url_rule("/API/v1/cluster/transfer", view_func=transfer, methods=["POST"])


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return PeekQuery().limit
    if not raw.isdigit() or not 1 <= int(raw) <= PEEK_LIMIT_MAX:
        raise validation_problem(f"expected int >= 1 and <= {PEEK_LIMIT_MAX}", "query.limit", raw)
    return int(raw)


def _node_body(status: NodeStatus) -> NodeStatusBody:
    return NodeStatusBody(
        schema=schema_url("NodeStatusBody"),
        id=status.id,
        role=status.role,
        term=status.term,
        leader=status.leader,
        commit_index=status.commit_index,
        applied_index=status.applied_index,
        last_index=status.last_index,
    )


async def _ask_member(
    service: Any,
    client: httpx.AsyncClient,
    server: ServerInfo,
    figures: dict[str, NodeStatusBody],
) -> None:
    if server.id == service.raft.node_id:
        figures[server.id] = _node_body(service.node_status())
        return
    if not server.http_address:
        return
    try:
        response = await client.get(f"http://{server.http_address}{NODE_PATH}")
        if response.status_code == 200:
            figures[server.id] = _NODE_DECODER.decode(response.content)
    except (httpx.HTTPError, msgspec.ValidationError, msgspec.DecodeError):
        pass  # shown unreachable


def _member(server: ServerInfo, status: NodeStatusBody | None, newest: int) -> MemberBody:
    member = MemberBody(
        id=server.id,
        addr=server.raft_address,
        http_addr=server.http_address,
        suffrage=server.suffrage,
        is_leader=server.is_leader,
        reachable=status is not None,
    )
    if status is not None:
        member.role = status.role
        member.term = status.term
        member.commit_index = status.commit_index
        member.applied_index = status.applied_index
        member.lag = newest - status.applied_index
    return member
