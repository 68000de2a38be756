"""A leader whose clock runs an hour fast does not move the queue's clock an hour ahead: a message
delayed by 10 minutes is not delivered early, the state's clock stays within CLOCK_AHEAD_MS_MAX
of the other nodes' clocks, and /metrics shows each peer's skew (issue 10, finding 4).

Three nodes over real HTTP and Raft on 127.0.0.1; node-0's clock is the real one plus an hour
(an injected clock function), the others' the real one.
"""

from __future__ import annotations

import httpx
import trio

import doq.service as service_module
from doq.clockbound import CLOCK_AHEAD_MS_MAX, PeerClocks
from doq.service import wall_clock_ms

from .support import ServedNode, leader_of, served_cluster

HOUR_MS = 3_600_000
FAST = "node-0"
DELAY_S = 600
SKEW_TOLERANCE_MS = 2_000  # a loaded machine's round trip, at most
WAIT_S = 20


def clock_of(node_id: str) -> dict:
    if node_id == FAST:
        return {"clock_ms": lambda: wall_clock_ms() + HOUR_MS}
    return {}


async def lead_with(nodes: list[ServedNode], node_id: str) -> ServedNode:
    target = next(node for node in nodes if node.node_id == node_id)
    with trio.fail_after(WAIT_S):
        while not target.service.raft.is_leader:
            leader = next((n for n in nodes if n.service.raft.is_leader), None)
            if leader is not None and leader is not target:
                await leader.service.raft.transfer_leadership(node_id)
            await trio.sleep(0.1)
    await probed_all(nodes)
    return target


async def probed_all(nodes: list[ServedNode]) -> None:
    """Until every node has a fresh estimate of every other (probes run every second, and a
    first one may have found a peer's HTTP server not yet listening)."""
    with trio.fail_after(WAIT_S):
        for node in nodes:
            others = {n.node_id for n in nodes} - {node.node_id}
            while set(node.service.clock_skews_ms()) != others:
                await trio.sleep(0.02)


def metric(text: str, line_start: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(line_start)]
    return float(line.split()[-1])


async def test_a_leader_an_hour_fast_delivers_nothing_early_and_reports_its_skew(tmp_path):
    async with served_cluster(str(tmp_path), service_kwargs_of=clock_of) as nodes:
        leader = await lead_with(nodes, FAST)
        assert leader_of(nodes) is leader
        async with httpx.AsyncClient(base_url=leader.url, timeout=10) as client:
            body = {"name": "later", "type": "delayed", "settings": {}}
            assert (await client.post("/API/v1/queues", json=body)).status_code == 200
            due_s = wall_clock_ms() // 1000 + DELAY_S
            message = {"priority": due_s, "content": "in ten minutes"}
            enqueued = await client.post("/API/v1/queues/later/messages", json=message)
            assert enqueued.status_code == 200
            dequeued = await client.get("/API/v1/queues/later/messages")
            assert dequeued.status_code == 400, dequeued.text  # not due: not delivered

            assert leader.service.state.clock_ms() <= wall_clock_ms() + CLOCK_AHEAD_MS_MAX
            assert leader.service.clamped_stamps > 0
            text = (await client.get("/metrics")).text
        for peer in ("node-1", "node-2"):
            skew_ms = metric(text, f'doq_clock_skew_ms{{peer="{peer}"}}')
            assert abs(skew_ms + HOUR_MS) <= SKEW_TOLERANCE_MS, (peer, skew_ms)
        assert metric(text, "doq_clock_majority_estimate ") == 1
        follower = next(node for node in nodes if node.node_id == "node-1")
        skews = follower.service.clock_skews_ms()
        assert abs(skews[FAST] - HOUR_MS) <= SKEW_TOLERANCE_MS
        assert abs(skews["node-2"]) <= SKEW_TOLERANCE_MS


async def test_without_a_majority_estimate_a_write_answers_503_and_reads_still_work(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(service_module, "CLOCK_ESTIMATE_WAIT_S_MAX", 0.2)

    def blind(_node_id: str) -> dict:
        return {"peer_clocks": PeerClocks(sample_age_ms_max=-1)}  # no estimate is ever fresh

    async with served_cluster(str(tmp_path), service_kwargs_of=blind) as nodes:
        leader = leader_of(nodes)
        async with httpx.AsyncClient(base_url=leader.url, timeout=10) as client:
            body = {"name": "q", "type": "delayed", "settings": {}}
            refused = await client.post("/API/v1/queues", json=body)
            assert refused.status_code == 503
            assert "no clock estimate" in refused.json()["detail"]
            assert (await client.get("/API/v1/queues")).status_code == 200
            text = (await client.get("/metrics")).text
        assert metric(text, "doq_clock_majority_estimate ") == 0
