"""Group commit across requests (issue 8 §9): concurrent batches, streams and single requests
share state-machine transactions. The driver hands the state machine all of one Ready round's
committed entries in one ``apply`` call (raft_zmq/node.py, ``_handle_round``), and the state
machine applies one call in one LMDB write transaction (``QueueStateMachine._apply_batch``), whose
commit is the one fdatasync of the round (docs/state-machine.md, "Durability")."""

from __future__ import annotations

import json

import lmdb
import trio

from doq.commands import decode_command

from .support import api_app
from .test_messages import QUEUES, setup_queue

M = f"{QUEUES}/q/messages"


class Recorder:
    """Each ``apply`` call's commands, and the LMDB write transactions begun meanwhile."""

    def __init__(self, state) -> None:
        self.rounds: list[list[str]] = []
        self.write_txns = 0
        apply, env = state.apply, state._env

        def recording_apply(entries):
            before = self.write_txns
            results = apply(entries)
            kinds = [type(decode_command(e.data)).__name__ for e in entries if e.data]
            self.rounds.append(kinds)
            assert self.write_txns - before <= 1, "more than one write transaction in a round"
            return results

        state.apply = recording_apply
        state._env = _CountingEnv(env, self)


class _CountingEnv:
    def __init__(self, env: lmdb.Environment, recorder: Recorder) -> None:
        self._env, self._recorder = env, recorder

    def __getattr__(self, name):
        return getattr(self._env, name)

    def begin(self, *args, **kwargs):
        if kwargs.get("write"):
            self._recorder.write_txns += 1
        return self._env.begin(*args, **kwargs)


class Gate:
    """Holds proposals until ``expected`` have arrived, then lets them all go in one tick: what
    concurrent requests look like to a busy leader, made deterministic for the test."""

    def __init__(self, raft, expected: int) -> None:
        self.expected, self.arrived, self.open = expected, 0, trio.Event()
        propose = raft.propose

        async def gated(data):
            self.arrived += 1
            if self.arrived >= self.expected:
                self.open.set()
            await self.open.wait()
            return await propose(data)

        raft.propose = gated


async def test_concurrent_batch_single_and_stream_writes_share_one_transaction(tmp_path):
    async with api_app(str(tmp_path)) as api:
        client = api.client
        await setup_queue(client)
        await _batch(client, {"messages": [{"priority": 0, "content": "taken"}]})
        taken = (await (await client.get(f"{M}?count=1")).get_json())["messages"][0]
        recorder = Recorder(api.service.state)
        Gate(api.service.raft, expected=4)
        async with client.websocket(f"{QUEUES}/q/stream") as ws:
            async with trio.open_nursery() as nursery:
                frame = {"op": "enqueue", "ref": "s", "message": {"priority": 0, "content": "s"}}
                nursery.start_soon(ws.send, json.dumps(frame))
                batch = {"messages": [{"priority": 0, "content": f"b{n}"} for n in range(10)]}
                nursery.start_soon(_batch, client, batch)
                nursery.start_soon(_enqueue, client, "single")
                acks = {"ids": [{"id": taken["id"], "receipt": taken["receipt"]}]}
                nursery.start_soon(_ack, client, acks)
            (answer,) = json.loads(await ws.receive())["results"]
            assert answer["result"]["status"] == "ENQUEUED"
        # a stream's Enqueue, a batch Enqueue, a single Enqueue and an AckMany: one round, one
        # transaction
        assert len(recorder.rounds) == 1, recorder.rounds
        assert sorted(recorder.rounds[0]) == ["AckMany", "Enqueue", "Enqueue", "Enqueue"]
        assert recorder.write_txns == 1
        info = api.service.state.queue_info("q")
        assert (info.ready, info.unacked) == (12, 0)


async def _enqueue(client, content):
    response = await client.post(M, json={"priority": 0, "content": content})
    assert response.status_code == 200


async def _batch(client, batch):
    response = await client.post(f"{M}/batch", json=batch)
    assert response.status_code == 200


async def _ack(client, body):
    response = await client.post(f"{M}/ack", json=body)
    assert response.status_code == 200
    assert (await response.get_json())["results"][0]["status"] == "ACKNOWLEDGED"
