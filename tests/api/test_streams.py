"""Streams over WebSocket (doq/api/streams.py): producers' enqueues batched into few commands and
answered by ref; a consumer never pushed more than the credit it granted, woken by an enqueue; a
consumer that leaves keeps its messages in flight until their deadline; a bad frame gets an error
frame and a close, and the node goes on; a follower names the leader; an upgrade to a path with
no WebSocket answers 404."""

from __future__ import annotations

import json

import pytest
import trio
from quart.testing import WebsocketResponseError
from quart.testing.connections import WebsocketDisconnectError

from doq.api.stream_frames import STREAM_CREDIT_MAX

from .support import api_app, followers_of, leader_of, served_cluster
from .test_messages import QUEUES, setup_queue
from .test_receipts import SteppedClock, short_lease_queue

S = f"{QUEUES}/q/stream"
M = f"{QUEUES}/q/messages"


async def receive_json(ws):
    with trio.fail_after(10):
        return json.loads(await ws.receive())


async def closed_with(ws):
    """The error frame the server sent, and the close code that followed it."""
    frame = await receive_json(ws)
    with pytest.raises(WebsocketDisconnectError) as closed, trio.fail_after(10):
        await ws.receive()
    return frame, closed.value.args[0]


class CountingService:
    """The service, counting the replicated enqueue commands the stream makes."""

    def __init__(self, service):
        self._service = service
        self.enqueues = 0

    def __getattr__(self, name):
        return getattr(self._service, name)

    async def enqueue(self, queue, messages):
        self.enqueues += 1
        return await self._service.enqueue(queue, messages)


async def test_an_upgrade_to_a_path_without_a_websocket_answers_404(tmp_path):
    async with api_app(str(tmp_path)) as api:
        for path in (f"{QUEUES}/q/messages", "/nowhere"):
            async with api.client.websocket(path) as ws:
                with pytest.raises(WebsocketResponseError) as refused:
                    await ws.receive()
            assert refused.value.response.status_code == 404, path


async def test_enqueues_on_a_stream_are_batched_and_answered_by_ref(tmp_path):
    async with api_app(str(tmp_path), service_wrapper=CountingService) as api:
        await setup_queue(api.client)
        async with api.client.websocket(S) as ws:
            for n in range(50):
                frame = {
                    "op": "enqueue",
                    "ref": f"r{n}",
                    "message": {"priority": 1, "content": f"{n}"},
                }
                await ws.send(json.dumps(frame))
            results = []
            frames = 0
            while len(results) < 50:
                frame = await receive_json(ws)
                assert frame["op"] == "results"
                results += frame["results"]
                frames += 1
        assert [r["ref"] for r in results] == [f"r{n}" for n in range(50)]
        assert {r["result"]["status"] for r in results} == {"ENQUEUED"}
        # frames that came during a command share the next, and one answer frame
        assert api.service.enqueues == frames < 50
        info = await (await api.client.get(f"{QUEUES}/q")).get_json()
        assert info["ready"] == 50
        first = await (await api.client.get(M)).get_json()
        assert (first["id"], first["content"]) == (results[0]["result"]["id"], "0")


async def test_credit_is_never_exceeded_and_acks_are_answered_by_ref(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        messages = [{"priority": 0, "content": str(n)} for n in range(10)]
        await api.client.post(f"{M}/batch", json={"messages": messages})
        async with api.client.websocket(S) as ws:
            delivered = []
            await ws.send(json.dumps({"op": "credit", "credit": 3}))
            while len(delivered) < 3:
                frame = await receive_json(ws)
                assert frame["op"] == "deliver"
                delivered += frame["messages"]
            assert len(delivered) == 3
            assert api.service.state.queue_info("q").unacked == 3
            # The pusher waits for credit: an ack on the socket is answered, nothing is pushed.
            first = delivered[0]
            await ws.send(
                json.dumps(
                    {"op": "ack", "ref": "a", "id": first["id"], "receipt": first["receipt"]}
                )
            )
            answer = await receive_json(ws)
            assert answer == {
                "op": "results",
                "results": [{"ref": "a", "result": {"status": "ACKNOWLEDGED", "id": first["id"]}}],
            }
            await ws.send(json.dumps({"op": "touch", "ref": "t", "id": first["id"]}))
            touched = await receive_json(ws)
            (touched,) = touched["results"]
            assert touched["result"]["status"] == "FAILED"
            assert touched["result"]["error"]["status"] == 404
            info = api.service.state.queue_info("q")
            assert (info.unacked, info.ready) == (2, 7)
            await ws.send(json.dumps({"op": "credit", "credit": 100}))
            while len(delivered) < 10:
                delivered += (await receive_json(ws))["messages"]
            assert [m["content"] for m in delivered] == [str(n) for n in range(10)]


async def test_a_waiting_consumer_is_woken_by_an_enqueue(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        async with api.client.websocket(f"{S}?ack=true") as ws:
            await ws.send(json.dumps({"op": "credit", "credit": 5}))
            with trio.fail_after(10):
                while api.app.doq.waits.waiting("q") < 1:
                    await trio.sleep(0.005)
            await api.client.post(M, json={"priority": 0, "content": "late"})
            frame = await receive_json(ws)
        assert [m["content"] for m in frame["messages"]] == ["late"]
        assert api.service.state.queue_info("q").total == 0  # ack=true: removed as delivered


async def test_a_consumer_that_leaves_keeps_its_messages_in_flight_until_their_deadline(tmp_path):
    clock = SteppedClock()
    async with api_app(str(tmp_path), service_wrapper=clock) as api:
        await short_lease_queue(api.client)
        await api.client.post(f"{M}/batch", json={"messages": [{"priority": 0, "content": "a"}]})
        async with api.client.websocket(S) as ws:
            await ws.send(json.dumps({"op": "credit", "credit": 1}))
            taken = (await receive_json(ws))["messages"][0]
        info = api.service.state.queue_info("q")
        assert (info.unacked, info.ready) == (1, 0)
        assert (await api.client.get(M)).status_code == 400  # nothing for another consumer
        clock.now_ms += 1_000  # the lease passes
        again = await api.client.get(M)
        assert again.status_code == 200
        assert again.headers["X-Doq-Receipt"] == f"{taken['id']}.2"


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        json.dumps({"op": "dance"}),
        json.dumps({"op": "credit", "credit": 0}),
        json.dumps({"op": "credit", "credit": STREAM_CREDIT_MAX + 1}),
        json.dumps({"op": "enqueue", "ref": "r", "message": {"priority": -1, "content": "x"}}),
        json.dumps(
            {
                "op": "enqueue",
                "ref": "r",
                "message": {"priority": 1, "content": "x", "id": "99999999999999999999"},
            }
        ),
        json.dumps({"op": "ack", "ref": "r", "id": "12", "receipt": "13.1"}),
    ],
)
async def test_a_bad_frame_gets_an_error_frame_and_a_close(tmp_path, frame):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        async with api.client.websocket(S) as ws:
            await ws.send(frame)
            error, code = await closed_with(ws)
        assert error["op"] == "error" and error["status"] == 422, error
        assert code == 1008
        enqueued = await api.client.post(M, json={"priority": 0, "content": "still here"})
        assert enqueued.status_code == 200
        assert api.service.state.queue_info("q").total == 1


async def test_a_stream_of_a_missing_queue_is_a_404_error_frame(tmp_path):
    async with api_app(str(tmp_path)) as api:
        async with api.client.websocket(S) as ws:
            error, code = await closed_with(ws)
        assert (error["status"], code) == (404, 1008)


async def test_a_follower_names_the_leader_and_closes(tmp_path):
    async with served_cluster(str(tmp_path)) as nodes:
        leader = leader_of(nodes)
        follower = followers_of(nodes)[0]
        with trio.fail_after(10):
            while follower.service.leader() is None:
                await trio.sleep(0.01)
        client = follower.app.test_client()
        async with client.websocket(S) as ws:
            error, code = await closed_with(ws)
        assert (error["status"], code) == (503, 1013)
        assert error["leader"] == f"http://{leader.http_address}"


async def test_a_leader_change_ends_a_waiting_stream_naming_the_new_leader(tmp_path):
    async with served_cluster(str(tmp_path)) as nodes:
        leader = leader_of(nodes)
        successor = followers_of(nodes)[0]
        client = leader.app.test_client()
        await setup_queue(client)
        async with client.websocket(S) as ws:
            await ws.send(json.dumps({"op": "credit", "credit": 10}))
            with trio.fail_after(10):
                while leader.app.doq.waits.waiting("q") < 1:
                    await trio.sleep(0.005)
            await leader.service.raft.transfer_leadership(successor.node_id)
            error, code = await closed_with(ws)
        assert (error["status"], code) == (503, 1013)
        assert "nothing was dequeued" in error["detail"]
        assert error["leader"] == f"http://{successor.http_address}"
        assert successor.service.state.queue_info("q").unacked == 0


async def test_a_bundle_is_taken_whole_or_not_at_all(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        enqueue = {"op": "enqueue", "ref": "e", "message": {"priority": 0, "content": "b"}}
        async with api.client.websocket(S) as ws:
            await ws.send(json.dumps([enqueue, {"op": "credit", "credit": 1}, enqueue]))
            seen = []
            while len(seen) < 3:  # two results, and the delivery the credit allows
                frame = await receive_json(ws)
                seen += frame.get("results", []) + frame.get("messages", [])
        assert [item.get("ref") for item in seen].count("e") == 2
        async with api.client.websocket(S) as ws:
            bad = dict(enqueue, message={"priority": -1, "content": "x"})
            await ws.send(json.dumps([enqueue, bad]))
            error, code = await closed_with(ws)
        assert (error["status"], code) == (422, 1008)
        info = api.service.state.queue_info("q")
        # the two of the first bundle (one delivered, in flight), nothing of the second
        assert (info.ready, info.unacked, info.enqueued_total) == (1, 1, 2)
