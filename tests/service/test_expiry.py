"""The leader returns expired in-flight messages to ready by itself (doq/expiry.py), with a
leader-stamped ExpireDue command: counts do not wait for the next consumer, replicas stay
identical, and deadlines close together cost one command."""

from __future__ import annotations

import trio

from doq.commands import CreateQueue, Dequeue, Enqueue, ExpireDue, NewMessage, QueueType
from doq.expiry import EXPIRY_GRACE_MS, Expirer
from doq.service import MessageInput
from doq.state.results import ExpiredReturned, RejectCode, Rejected

from ..state.helpers import Log, open_machine, run_one
from ..support import single_node_service

T = 1_750_000_000_000


def test_expire_due_returns_what_the_next_command_would_and_nothing_else(tmp_path):
    sm = open_machine(str(tmp_path / "s"))
    try:
        log = Log()
        run_one(sm, log, CreateQueue(T, "q", QueueType.FAIR, 2))
        run_one(sm, log, Enqueue(T, "q", (NewMessage(1, 0, "a"), NewMessage(2, 0, "b"))))
        run_one(sm, log, Dequeue(T, "q", count=1))
        run_one(sm, log, Dequeue(T + 500, "q", count=1))
        assert sm.earliest_deadlines_ms() == {"q": T + 2_000}
        assert sm.next_due_ms("q") == T + 2_000
        assert run_one(sm, log, ExpireDue(T + 1_999, "q")) == ExpiredReturned("q", 0)
        assert run_one(sm, log, ExpireDue(T + 2_000, "q")) == ExpiredReturned("q", 1)
        info = sm.queue_info("q")
        assert (info.ready, info.unacked, info.expired_total) == (1, 1, 1)
        assert sm.earliest_deadlines_ms() == {"q": T + 2_500}
        missing = run_one(sm, log, ExpireDue(T, "nope"))
        assert isinstance(missing, Rejected) and missing.code is RejectCode.QUEUE_NOT_FOUND
    finally:
        sm.close()


async def test_an_expired_message_shows_ready_again_without_any_consumer(tmp_path):
    async with single_node_service(str(tmp_path)) as service:
        expired_commands = []
        service.on_commit.append(
            lambda command, result: (
                expired_commands.append(result) if isinstance(command, ExpireDue) else None
            )
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(Expirer(service).run)
            await service.create_queue("q", QueueType.DELAYED, ack_timeout_s=1)
            await service.enqueue("q", [_input("a"), _input("b")])
            await service.dequeue("q", ack=False, count=2)
            delivered_at = trio.current_time()
            assert service.state.queue_info("q").unacked == 2
            with trio.fail_after(5):
                while not expired_commands:  # the proposer sees its result after the apply
                    await trio.sleep(0.01)
            elapsed_s = trio.current_time() - delivered_at
            assert service.state.queue_info("q").ready == 2
            assert 1 <= elapsed_s < 1 + EXPIRY_GRACE_MS / 1000 + 0.5
            assert service.state.queue_info("q").unacked == 0
            assert expired_commands == [ExpiredReturned("q", 2)]  # one command for both
            nursery.cancel_scope.cancel()


def _input(content: str) -> MessageInput:
    return MessageInput(priority=0, content=content)
