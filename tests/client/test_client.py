"""The blocking client against a real one-node doq: every endpoint, typed results and typed
errors (docs/client.md, "Library")."""

from __future__ import annotations

import pytest

from doq.client import (
    Client,
    Conflict,
    MessageNotFound,
    NewMessage,
    QueueEmpty,
    QueueNotFound,
    StaleReceipt,
    ValidationFailed,
)


@pytest.fixture
def client(node):
    with Client(node.url) as c:
        yield c


def test_queues_are_created_described_listed_updated_and_deleted(client):
    created = client.create_queue("q-life", "fair", strategy="weighted", max_unacked=3)
    assert (created.name, created.type, created.settings.strategy) == ("q-life", "fair", "WEIGHTED")
    assert created.settings.max_unacked == 3
    updated = client.update_queue("q-life", max_unacked=5, ack_timeout=7)
    assert (updated.settings.max_unacked, updated.settings.ack_timeout) == (5, 7)
    info = client.queue("q-life")
    assert (info.ready, info.unacked, info.total) == (0, 0, 0)
    assert "q-life" in [q.name for q in client.list_queues()]
    client.delete_queue("q-life")
    with pytest.raises(QueueNotFound):
        client.queue("q-life")


def test_errors_are_typed_and_a_validation_error_names_its_field(client):
    client.create_queue("q-err")
    with pytest.raises(Conflict) as conflict:
        client.create_queue("q-err", "fair")
    assert conflict.value.status == 409 and "exists with type" in conflict.value.detail
    with pytest.raises(ValidationFailed) as invalid:
        client.enqueue("q-err", "x", priority=-1)
    assert invalid.value.field == "body.priority"
    with pytest.raises(ValidationFailed) as invalid_item:
        client.enqueue_many("q-err", [NewMessage("a"), NewMessage("b", priority=-3)])
    assert invalid_item.value.field == "body.messages[1].priority"
    with pytest.raises(QueueEmpty):
        client.dequeue("q-err")
    with pytest.raises(MessageNotFound):
        client.get_message("q-err", 12345)
    with pytest.raises(QueueNotFound):
        client.enqueue("nowhere", "x")


def test_a_message_is_enqueued_got_reprioritized_and_deleted(client):
    client.create_queue("q-msg")
    sent = client.enqueue("q-msg", "hello", priority=5, metadata={"k": "v"})
    assert not sent.duplicate and sent.message.content == "hello"
    got = client.get_message("q-msg", sent.id)
    assert (got.id, got.priority, got.metadata) == (sent.id, 5, {"k": "v"})
    client.set_priority("q-msg", sent.id, 2)
    assert client.get_message("q-msg", sent.id).priority == 2
    assert [m.id for m in client.peek("q-msg")] == [sent.id]
    client.delete_message("q-msg", sent.id)
    with pytest.raises(MessageNotFound):
        client.get_message("q-msg", sent.id)


def test_an_enqueue_with_the_same_id_leaves_one_message(client):
    client.create_queue("q-dup")
    first = client.enqueue("q-dup", "one", id=77)
    again = client.enqueue("q-dup", "two", id=77)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.message.content == "one"
    assert client.queue("q-dup").total == 1


def test_a_delivery_carries_its_receipt_and_a_stale_one_is_refused(client):
    client.create_queue("q-rcpt")
    client.enqueue("q-rcpt", "x")
    taken = client.dequeue("q-rcpt")
    assert taken.receipt
    client.touch("q-rcpt", taken.id, receipt=taken.receipt)
    client.nack("q-rcpt", taken.id, receipt=taken.receipt)
    with pytest.raises(StaleReceipt):
        client.ack("q-rcpt", taken.id, receipt=taken.receipt)
    again = client.dequeue("q-rcpt", ack=False)
    assert again.id == taken.id and again.receipt != taken.receipt
    client.ack("q-rcpt", again.id, receipt=again.receipt)
    assert client.queue("q-rcpt").total == 0


def test_batches_enqueue_dequeue_and_settle_many(client):
    client.create_queue("q-batch")
    sent = client.enqueue_many("q-batch", ["a", NewMessage("b", priority=0, metadata={"n": "2"})])
    assert [s.duplicate for s in sent] == [False, False]
    taken = client.dequeue_many("q-batch", 10)
    assert [m.content for m in taken] == ["a", "b"] and all(m.receipt for m in taken)
    assert all(r.ok for r in client.touch_many("q-batch", taken))
    nacked = client.nack_many("q-batch", [taken[1]], priority=1)
    assert nacked[0].status == "UNACKNOWLEDGED"
    acked = client.ack_many("q-batch", [taken[0], 999])
    assert acked[0].status == "ACKNOWLEDGED"
    assert acked[1].status == "FAILED" and acked[1].error.status == 404
    assert client.dequeue_many("q-batch", 10, ack=True)[0].content == "b"
    assert client.dequeue_many("q-batch", 10, wait=0.1) == []


def test_ids_cluster_and_backup_restore(client):
    ids = client.generate_ids(3)
    assert len(set(ids)) == 3
    (server,) = client.servers()
    assert server.is_leader and server.suffrage == "Voter"
    (member,) = client.members()
    assert member.reachable and member.lag == 0
    client.create_queue("q-backup")
    client.enqueue("q-backup", "kept")
    backup = client.backup()
    assert backup.data and backup.last_version
    client.delete_queue("q-backup")
    client.restore(backup.data)
    assert client.queue("q-backup").total == 1


def test_the_consumer_iterator_takes_acks_and_nacks_with_receipts(client):
    client.create_queue("q-consume", ack_timeout=30)
    client.enqueue_many("q-consume", ["1", "2", "3"])
    seen = []
    for msg in client.consume("q-consume", prefetch=2, wait=0.5):
        seen.append(msg.content)
        if msg.content == "2" and seen.count("2") == 1:
            msg.touch()
            msg.nack(delay=0)
        else:
            msg.ack()
        if len(seen) == 4:
            break
    assert sorted(seen) == ["1", "2", "2", "3"]
    assert client.queue("q-consume").total == 0


def test_messages_prefetched_but_not_handed_out_go_back_when_the_loop_ends(client):
    client.create_queue("q-prefetch", ack_timeout=600)
    client.enqueue_many("q-prefetch", ["1", "2", "3"])
    consumer = client.consume("q-prefetch", prefetch=3, wait=0.5)
    first = next(consumer)
    first.ack()
    consumer.close()
    info = client.queue("q-prefetch")
    assert (info.ready, info.unacked) == (2, 0)
