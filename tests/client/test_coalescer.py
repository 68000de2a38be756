"""The worker's coalescer (doq/worker/coalesce.py) against a recording ``settle_many``: it
gathers settlements into batches by verb (by size, and by its delay under Trio's MockClock),
maps each item's result back to its own settlement (a stale receipt fails that one alone),
reports a failed request to every settlement in it, and sends what is waiting when closed."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from doq.client.models import ItemError, ItemResult, Message, Settlement
from doq.worker.coalesce import Coalescer


def _message(n: int) -> Message:
    return Message(n, "default", 0, f"m{n}", None, f"{n}.1")


class _Server:
    """Answers each batch; ``stale`` IDs answer FAILED 409; ``down`` raises."""

    def __init__(self, stale: set[int] = frozenset(), down: bool = False) -> None:  # type: ignore[assignment]
        self.batches: list[tuple[str, list[int]]] = []
        self.stale = stale
        self.down = down

    async def settle_many(self, verb: str, batch: list[Settlement]) -> list[ItemResult]:
        self.batches.append((verb, [s.message.id for s in batch]))
        await trio.sleep(0)
        if self.down:
            raise ConnectionError("no node answered")
        return [
            ItemResult(s.message.id, "FAILED", error=ItemError(409, "stale"))
            if s.message.id in self.stale
            else ItemResult(s.message.id, "ACKNOWLEDGED")
            for s in batch
        ]


class _Outcomes:
    def __init__(self) -> None:
        self.got: dict[int, tuple[ItemResult | None, BaseException | None]] = {}

    def __call__(self, s: Settlement, result: ItemResult | None, error: BaseException | None):
        self.got[s.message.id] = (result, error)


async def test_a_stale_receipt_fails_its_own_item_and_not_the_others_of_its_batch():
    server, outcomes = _Server(stale={3}), _Outcomes()
    async with Coalescer(server.settle_many, outcomes) as coalescer:
        for n in range(1, 6):
            await coalescer.submit(Settlement("ack", _message(n)))
    assert server.batches == [("ack", [1, 2, 3, 4, 5])]  # one request for the five
    assert outcomes.got[3][0].error == ItemError(409, "stale")
    assert all(outcomes.got[n][0].ok for n in (1, 2, 4, 5))


async def test_verbs_go_in_their_own_batches_and_a_full_batch_goes_at_once():
    server, outcomes = _Server(), _Outcomes()
    async with Coalescer(server.settle_many, outcomes, batch_max=3, delay_s=3600) as coalescer:
        for n in range(1, 4):
            await coalescer.submit(Settlement("ack", _message(n)))
        with trio.fail_after(5):  # the full batch does not wait out the hour
            while not server.batches:
                await trio.sleep(0.001)
        assert server.batches == [("ack", [1, 2, 3])]
        await coalescer.submit(Settlement("ack", _message(4)))
        await coalescer.submit(Settlement("nack", _message(9), priority=7))
    assert sorted(server.batches) == [("ack", [1, 2, 3]), ("ack", [4]), ("nack", [9])]
    assert len(outcomes.got) == 5


async def test_a_settlement_waits_the_delay_for_others_then_goes(autojump_clock):
    server, outcomes = _Server(), _Outcomes()
    async with Coalescer(server.settle_many, outcomes, delay_s=0.5) as coalescer:
        await coalescer.submit(Settlement("touch", _message(1)))
        await trio.sleep(0.4)
        assert server.batches == []  # still gathering
        await coalescer.submit(Settlement("touch", _message(2)))
        await trio.sleep(0.2)
        assert server.batches == [("touch", [1, 2])]


async def test_a_failed_request_is_reported_for_every_settlement_in_it():
    server, outcomes = _Server(down=True), _Outcomes()
    async with Coalescer(server.settle_many, outcomes) as coalescer:
        await coalescer.submit(Settlement("ack", _message(1)))
        await coalescer.submit(Settlement("ack", _message(2)))
    assert {n: type(e) for n, (_, e) in outcomes.got.items()} == {
        1: ConnectionError,
        2: ConnectionError,
    }


async def test_closing_sends_what_waits_and_refuses_more():
    server, outcomes = _Server(), _Outcomes()
    coalescer = Coalescer(server.settle_many, outcomes, delay_s=3600)
    async with coalescer:
        await coalescer.submit(Settlement("ack", _message(1)))
    assert server.batches == [("ack", [1])] and outcomes.got[1][0].ok
    with pytest.raises(RuntimeError):
        await coalescer.submit(Settlement("ack", _message(2)))


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)
