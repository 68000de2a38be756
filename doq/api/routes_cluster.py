"""/API/v1/cluster: join, leave, servers, time (API.md "Cluster and operations").

Join and leave are configuration changes, which only the leader makes: on a follower they are
relayed like any write. ``servers`` answers from this node's view of the configuration; ``time``
with this node's own clock, which the other nodes probe (doq/peerclock.py)."""

from __future__ import annotations

from quart import Quart, Response
from quart_schema import tag

from doq.api.context import ApiContext
from doq.api.links import schema_url
from doq.api.render import answers, fails, json_response
from doq.api.schemas import (
    ClockBody,
    JoinedBody,
    JoinRequest,
    LeaveRequest,
    LeftBody,
    ServerBody,
    ServersBody,
)
from doq.api.validation import accepts

CLUSTER_PATH = "/API/v1/cluster"
CLOCK_PATH = f"{CLUSTER_PATH}/time"


def register_cluster_routes(app: Quart, api: ApiContext) -> None:
    served = api.dispatcher.served
    service = api.service

    @tag(["Cluster"])
    @answers(JoinedBody)
    @fails(400, 409, 422, 503)
    @served(is_write=True)
    @accepts(JoinRequest)
    async def join(body: JoinRequest) -> Response:
        """Add a node to the cluster

        addr is the joiner's Raft address; http_addr (doq's addition) its HTTP address. A node
        that is already a member is left as it is (its HTTP address is updated when given). A
        member's Raft address changes only with replace_unreachable: true (doq's addition) and
        nothing answering at its current address; otherwise 409."""
        await service.join(
            body.id, body.addr, body.http_addr, replace_unreachable=body.replace_unreachable
        )
        return json_response(
            JoinedBody(schema=schema_url("JoinedBody"), id=body.id, addr=body.addr)
        )

    @tag(["Cluster"])
    @answers(LeftBody)
    @fails(400, 409, 422, 503)
    @served(is_write=True)
    @accepts(LeaveRequest)
    async def leave(body: LeaveRequest) -> Response:
        """Remove a node from the cluster (a node that is not a member: nothing to do)"""
        await service.leave(body.id)
        return json_response(LeftBody(schema=schema_url("LeftBody"), id=body.id))

    @tag(["Cluster"])
    @answers(ServersBody)
    async def servers() -> Response:
        """List the members, their Raft addresses, suffrage and which one leads"""
        members = service.servers()
        leader = next((s for s in members if s.is_leader), None)
        leader_addr = leader.raft_address if leader is not None else ""
        body = ServersBody(
            schema=schema_url("ServersBody"),
            servers=[
                ServerBody(
                    id=s.id,
                    addr=s.raft_address,
                    leader_addr=leader_addr,
                    is_leader=s.is_leader,
                    suffrage=s.suffrage,  # type: ignore[arg-type]
                    http_addr=s.http_address,
                )
                for s in members
            ],
        )
        return json_response(body)

    @tag(["Cluster"])
    @answers(ClockBody)
    async def clock() -> Response:
        """This node's clock, answered locally (the nodes bound command times with it)"""
        body = ClockBody(schema=schema_url("ClockBody"), unix_ms=service.local_clock_ms())
        return json_response(body)

    app.add_url_rule(f"{CLUSTER_PATH}/join", view_func=join, methods=["POST"])
    app.add_url_rule(f"{CLUSTER_PATH}/leave", view_func=leave, methods=["POST"])
    app.add_url_rule(f"{CLUSTER_PATH}/servers", view_func=servers, methods=["GET"])
    app.add_url_rule(CLOCK_PATH, view_func=clock, methods=["GET"])
