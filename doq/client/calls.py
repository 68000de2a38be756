"""Every doq endpoint as a ``Call``: the request to make and how to read its answer, without I/O.

``Client`` and ``AsyncClient`` share this one surface (``Operations``): each method builds a Call
and hands it to the client's ``_run``, which does the I/O, the failover and the retries
(doq/client/sync.py, doq/client/aio.py). So the two clients cannot drift apart: the sync one
returns the value, the async one an awaitable of it.

Retried writes must not duplicate work (docs/api.md, "When a request fails"): an enqueue always
carries an ID the client drew from ``/API/v1/ids`` before the first attempt (``ids_needed``), so a
retry finds the stored message; ack, nack, touch and delete answer 404 (409 with a receipt) when
an earlier attempt whose outcome was unknown did apply, and ``done_after_unknown`` says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import attrs

from doq.client.errors import PROBLEM_KIND_HEADER, ValidationFailed, error_for
from doq.client.models import (
    Backup,
    Enqueued,
    ItemResult,
    Member,
    Message,
    NewMessage,
    Queue,
    Server,
    Settlement,
)
from doq.protocol import BATCH_ITEMS_MAX, DEQUEUE_COUNT_MAX, WAIT_S_MAX

API = "/API/v1"
RECEIPT_HEADER = "x-doq-receipt"


@attrs.frozen
class Reply:
    """An HTTP answer, whatever client library fetched it."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content) if self.content else None

    def retry_after_s(self) -> float | None:
        raw = self.headers.get("retry-after")
        try:
            return None if raw is None else float(raw)
        except ValueError:
            return None


@attrs.frozen
class Call:
    """One request. ``to_leader``: it changes state or takes messages, so it goes to the known
    leader (any node would relay it; this saves the hop). ``body_from_ids`` makes the JSON body
    once ``ids_needed`` IDs are drawn. ``wait_s``: a long poll, whose timeout must cover it."""

    method: str
    path: str
    parse: Callable[[Reply], Any]
    params: dict[str, str] | None = None
    body: Any = None
    files: dict[str, Any] | None = None
    to_leader: bool = True
    done_after_unknown: frozenset[int] = frozenset()
    ids_needed: int = 0
    body_from_ids: Callable[[list[int]], Any] | None = None
    wait_s: float = 0.0
    single_item: bool = False  # a batch of one: a failing field is named as the single form's

    def with_ids(self, ids: list[int]) -> Call:
        assert self.body_from_ids is not None and len(ids) == self.ids_needed
        return attrs.evolve(self, body=self.body_from_ids(ids), ids_needed=0, body_from_ids=None)


@attrs.frozen
class Retry:
    """The answer says: try again (elsewhere), after at least ``retry_after_s`` if given."""

    reason: str
    retry_after_s: float | None = None


def settle(call: Call, reply: Reply, unknown_before: bool) -> Any:
    """The call's value for ``reply``, a ``Retry``, or raises the typed error. ``unknown_before``:
    an earlier attempt may have been applied (its answer was lost, or was a 503)."""
    if 200 <= reply.status < 300:
        return call.parse(reply)
    if reply.status == 503:
        return Retry(_detail(reply), reply.retry_after_s())
    if unknown_before and reply.status in call.done_after_unknown:
        return None
    try:
        body = reply.json()
    except ValueError:
        body = None
    error = error_for(
        reply.status, body, reply.retry_after_s(), reply.headers.get(PROBLEM_KIND_HEADER)
    )
    if call.single_item and isinstance(error, ValidationFailed) and error.field:
        error.field = error.field.replace("body.messages[0].", "body.", 1)
    raise error


def _detail(reply: Reply) -> str:
    try:
        body = reply.json()
    except ValueError:
        return f"HTTP {reply.status}"
    return str(body.get("detail")) if isinstance(body, dict) else f"HTTP {reply.status}"


def quoted_queue(name: str) -> str:
    """The path of queue ``name`` (any name: percent-encoded)."""
    return f"{API}/queues/{quote(name, safe='')}"


_q = quoted_queue


def _none(reply: Reply) -> None:
    return None


def _message_body(message: NewMessage, message_id: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(message_id),
        "group": message.group,
        "priority": message.priority,
        "content": message.content,
    }
    if message.metadata is not None:
        body["metadata"] = message.metadata
    return body


def _enqueue_call(
    queue: str, items: list[NewMessage], pick: Callable[[list[Enqueued]], Any]
) -> Call:
    """The batch enqueue of ``items``, each with its own ID: the one given, or one the client
    draws before the first attempt, so that every retry sends the same IDs."""
    missing = sum(1 for m in items if m.id is None)
    sent: list[dict[str, Any]] = []

    def body(ids: list[int]) -> dict[str, Any]:
        fresh = iter(ids)
        sent[:] = [_message_body(m, m.id if m.id is not None else next(fresh)) for m in items]
        return {"messages": sent}

    def parse(reply: Reply) -> Any:
        results = []
        for item, mine in zip(reply.json()["results"], sent, strict=True):
            stored = Message.parse(item if "content" in item else mine)
            results.append(Enqueued(int(item["id"]), item["status"] == "DUPLICATE", stored))
        return pick(results)

    call = Call(
        "POST",
        f"{_q(queue)}/messages/batch",
        parse,
        ids_needed=missing,
        body_from_ids=body,
    )
    return call.with_ids([]) if missing == 0 else call


def _item_results(reply: Reply) -> list[ItemResult]:
    return [ItemResult.parse(item) for item in reply.json()["results"]]


def _in_flight_item(item: int | Message, receipt: str | None = None) -> dict[str, str]:
    if isinstance(item, Message):
        message_id, receipt = item.id, item.receipt
    else:
        message_id = item
    entry = {"id": str(message_id)}
    if receipt is not None:
        entry["receipt"] = receipt
    return entry


def settlement_entry(settlement: Settlement) -> dict[str, Any]:
    """The item of a batch ack, nack or touch (and the fields of a stream frame) for
    ``settlement``."""
    entry: dict[str, Any] = _in_flight_item(settlement.message)
    if settlement.verb == "nack":
        entry["priority"] = settlement.priority
        if settlement.metadata is not None:
            entry["metadata"] = settlement.metadata
    return entry


def _receipt_params(receipt: str | None) -> dict[str, str] | None:
    return None if receipt is None else {"receipt": receipt}


def _dequeue_params(ack: bool, count: int | None, wait_s: float | None) -> dict[str, str]:
    params = {"ack": "true" if ack else "false"}
    if count is not None:
        if not 1 <= count <= DEQUEUE_COUNT_MAX:
            raise ValueError(f"count must be 1..{DEQUEUE_COUNT_MAX}, not {count}")
        params["count"] = str(count)
    if wait_s:
        if not 0 <= wait_s <= WAIT_S_MAX:
            raise ValueError(f"wait must be 0..{WAIT_S_MAX} s, not {wait_s}")
        params["wait"] = f"{wait_s:g}"
    return params


def _settings(
    strategy: str | None, max_unacked: int | None, ack_timeout: int | None
) -> dict[str, Any]:
    given = {"strategy": strategy, "max_unacked": max_unacked, "ack_timeout": ack_timeout}
    return {key: value for key, value in given.items() if value is not None}


def delay_priority(delay_s: float, now_s: float | None = None) -> int:
    """The priority that makes a message on a delayed queue due ``delay_s`` seconds from now (a
    delayed queue's priority is the Unix second it is due at, docs/state-machine.md)."""
    return int((time.time() if now_s is None else now_s) + delay_s + 0.999)


def _as_new(item: NewMessage | str) -> NewMessage:
    return NewMessage(item) if isinstance(item, str) else item


def _check_batch(items: list[Any]) -> None:
    if not 1 <= len(items) <= BATCH_ITEMS_MAX:
        raise ValueError(f"a batch holds 1..{BATCH_ITEMS_MAX} items, not {len(items)}")


def ids_call(number: int) -> Call:
    return Call(
        "POST",
        f"{API}/ids",
        lambda r: [int(i) for i in r.json()["ids"]],
        body={"number": number},
    )


def servers_call() -> Call:
    return Call(
        "GET",
        f"{API}/cluster/servers",
        lambda r: [Server.parse(s) for s in r.json()["servers"]],
        to_leader=False,
    )


class Operations:
    """The surface both clients share: one method per endpoint (docs/client.md, "Library")."""

    def _run(self, call: Call) -> Any:
        raise NotImplementedError

    # Queues
    def create_queue(
        self,
        name: str,
        type: str = "delayed",
        *,
        strategy: str | None = None,
        max_unacked: int | None = None,
        ack_timeout: int | None = None,
    ) -> Any:
        body = {
            "name": name,
            "type": type,
            "settings": _settings(strategy, max_unacked, ack_timeout),
        }
        return self._run(Call("POST", f"{API}/queues", lambda r: Queue.parse(r.json()), body=body))

    def update_queue(
        self,
        name: str,
        *,
        strategy: str | None = None,
        max_unacked: int | None = None,
        ack_timeout: int | None = None,
    ) -> Any:
        body = {"settings": _settings(strategy, max_unacked, ack_timeout)}
        return self._run(Call("PUT", _q(name), lambda r: Queue.parse(r.json()), body=body))

    def delete_queue(self, name: str) -> Any:
        return self._run(Call("DELETE", _q(name), _none, done_after_unknown=frozenset({404})))

    def list_queues(self) -> Any:
        parse = lambda r: [Queue.parse(q) for q in r.json()["queues"]]
        return self._run(Call("GET", f"{API}/queues", parse, to_leader=False))

    def queue(self, name: str) -> Any:
        return self._run(Call("GET", _q(name), lambda r: Queue.parse(r.json()), to_leader=False))

    def peek(self, name: str, limit: int = 10) -> Any:
        parse = lambda r: [Message.parse(m) for m in r.json()["messages"]]
        params = {"limit": str(limit)}
        return self._run(Call("GET", f"{_q(name)}/peek", parse, params=params, to_leader=False))

    # Messages
    def enqueue(
        self,
        queue: str,
        content: str,
        *,
        priority: int = 0,
        group: str = "default",
        metadata: dict[str, str] | None = None,
        id: int | None = None,
    ) -> Any:
        """One message; sent as a batch of one, whose answer says whether the queue held its ID
        already (``duplicate``: a retry found the first attempt's message)."""
        message = NewMessage(content, priority, group, metadata, id)
        call = _enqueue_call(queue, [message], lambda results: results[0])
        return self._run(attrs.evolve(call, single_item=True))

    def enqueue_many(self, queue: str, messages: Iterable[NewMessage | str]) -> Any:
        """Up to ``BATCH_ITEMS_MAX`` messages in one request and one Raft entry."""
        items = [_as_new(m) for m in messages]
        _check_batch(items)
        return self._run(_enqueue_call(queue, items, lambda results: results))

    def dequeue(self, queue: str, *, ack: bool = False, wait: float | None = None) -> Any:
        def parse(reply: Reply) -> Message:
            return Message.parse(reply.json(), reply.headers.get(RECEIPT_HEADER))

        params = _dequeue_params(ack, None, wait)
        return self._run(
            Call("GET", f"{_q(queue)}/messages", parse, params=params, wait_s=wait or 0.0)
        )

    def dequeue_many(
        self, queue: str, count: int, *, ack: bool = False, wait: float | None = None
    ) -> Any:
        parse = lambda r: [Message.parse(m) for m in r.json()["messages"]]
        params = _dequeue_params(ack, count, wait)
        return self._run(
            Call("GET", f"{_q(queue)}/messages", parse, params=params, wait_s=wait or 0.0)
        )

    def get_message(self, queue: str, message_id: int) -> Any:
        path = f"{_q(queue)}/messages/{message_id}"
        return self._run(Call("GET", path, lambda r: Message.parse(r.json()), to_leader=False))

    def delete_message(self, queue: str, message_id: int) -> Any:
        path = f"{_q(queue)}/messages/{message_id}"
        return self._run(Call("DELETE", path, _none, done_after_unknown=frozenset({404})))

    def set_priority(self, queue: str, message_id: int, priority: int) -> Any:
        path = f"{_q(queue)}/messages/{message_id}/priority"
        return self._run(Call("PUT", path, _none, body={"priority": priority}))

    def ack(self, queue: str, message_id: int, *, receipt: str | None = None) -> Any:
        return self._in_flight("ack", queue, message_id, receipt, None)

    def touch(self, queue: str, message_id: int, *, receipt: str | None = None) -> Any:
        return self._in_flight("touch", queue, message_id, receipt, None)

    def nack(
        self,
        queue: str,
        message_id: int,
        *,
        priority: int = 0,
        delay: float | None = None,
        metadata: dict[str, str] | None = None,
        receipt: str | None = None,
    ) -> Any:
        """Give the message back: with ``priority`` (0 keeps its own), or on a delayed queue with
        ``delay`` seconds before it is due again."""
        if delay is not None:
            priority = delay_priority(delay)
        body: dict[str, Any] = {"priority": priority}
        if metadata is not None:
            body["metadata"] = metadata
        if receipt is not None:
            body["receipt"] = receipt
        return self._in_flight("nack", queue, message_id, None, body)

    def _in_flight(
        self, verb: str, queue: str, message_id: int, receipt: str | None, body: Any
    ) -> Any:
        call = Call(
            "POST",
            f"{_q(queue)}/messages/{message_id}/{verb}",
            _none,
            params=_receipt_params(receipt),
            body=body,
            done_after_unknown=frozenset({404, 409}),
        )
        return self._run(call)

    def ack_many(self, queue: str, items: Iterable[int | Message]) -> Any:
        return self._in_flight_many("ack", queue, items)

    def touch_many(self, queue: str, items: Iterable[int | Message]) -> Any:
        return self._in_flight_many("touch", queue, items)

    def nack_many(
        self,
        queue: str,
        items: Iterable[int | Message],
        *,
        priority: int = 0,
        metadata: dict[str, str] | None = None,
    ) -> Any:
        entries: list[dict[str, Any]] = []
        for item in items:
            entry: dict[str, Any] = {**_in_flight_item(item), "priority": priority}
            if metadata is not None:
                entry["metadata"] = metadata
            entries.append(entry)
        _check_batch(entries)
        path = f"{_q(queue)}/messages/nack"
        return self._run(Call("POST", path, _item_results, body={"messages": entries}))

    def _in_flight_many(self, verb: str, queue: str, items: Iterable[int | Message]) -> Any:
        entries = [_in_flight_item(item) for item in items]
        _check_batch(entries)
        path = f"{_q(queue)}/messages/{verb}"
        return self._run(Call("POST", path, _item_results, body={"ids": entries}))

    def settle_many(self, queue: str, verb: str, settlements: Iterable[Settlement]) -> Any:
        """Acks, nacks or touches (``verb``, all alike) of delivered messages in one request, each
        with its own receipt, priority and metadata: an ``ItemResult`` per settlement, in order;
        a stale receipt fails its own item only."""
        return self.settle_entries(queue, verb, [settlement_entry(s) for s in settlements])

    def settle_entries(self, queue: str, verb: str, entries: list[dict[str, Any]]) -> Any:
        """``settle_many`` of items already in the request's form (``settlement_entry``)."""
        _check_batch(entries)
        key = "messages" if verb == "nack" else "ids"
        path = f"{_q(queue)}/messages/{verb}"
        return self._run(Call("POST", path, _item_results, body={key: entries}))

    def generate_ids(self, number: int) -> Any:
        return self._run(ids_call(number))

    # Cluster
    def servers(self) -> Any:
        return self._run(servers_call())

    def members(self) -> Any:
        parse = lambda r: [Member.parse(m) for m in r.json()["members"]]
        return self._run(Call("GET", f"{API}/cluster/members", parse, to_leader=False))

    def join(
        self, node_id: str, addr: str, http_addr: str | None = None, *, replace: bool = False
    ) -> Any:
        body: dict[str, Any] = {"id": node_id, "addr": addr, "replace_unreachable": replace}
        if http_addr is not None:
            body["http_addr"] = http_addr
        return self._run(Call("POST", f"{API}/cluster/join", _none, body=body))

    def leave(self, node_id: str) -> Any:
        return self._run(Call("POST", f"{API}/cluster/leave", _none, body={"id": node_id}))

    def transfer(self, node_id: str) -> Any:
        return self._run(Call("POST", f"{API}/cluster/transfer", _none, body={"id": node_id}))

    # Backup and restore
    def backup(self) -> Any:
        def parse(reply: Reply) -> Backup:
            version = reply.headers.get("x-last-version")
            return Backup(reply.content, None if version is None else int(version))

        return self._run(Call("POST", "/db/backup", parse, body={"since": 0}, to_leader=False))

    def restore(self, data: bytes) -> Any:
        files = {"file": ("doq-backup.db", data, "application/octet-stream")}
        return self._run(Call("POST", "/db/restore", _none, files=files))
