"""What had no test: the command line's progress bar (on stderr when it is a terminal, nothing in
a pipe, never a byte on stdout), the worker's progress line, and the client's cluster join (a
member joining again is left as it is; another Raft address for it is a Conflict)."""

from __future__ import annotations

import io
import sys

import pytest
import trio
import trio.testing

from doq.client import Client, Conflict
from doq.cmd.progress import progress
from doq.worker import cli as worker_cli
from doq.worker.stats import WorkerStats


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_draws_on_a_terminals_stderr_and_never_on_stdout(monkeypatch):
    err, out = _Terminal(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", out)
    with progress("sending", 10) as advance:
        advance(10)
    assert out.getvalue() == ""
    assert "sending" in err.getvalue() and "10/10" in err.getvalue()


def test_the_progress_bar_is_silent_in_a_pipe(monkeypatch):
    err, out = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", out)
    with progress("sending", 10) as advance:
        advance(10)
    assert (err.getvalue(), out.getvalue()) == ("", "")


async def test_the_workers_progress_line_is_printed_every_interval(monkeypatch, mock_clock):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    stats = WorkerStats()
    stats.succeeded(0.25)
    stats.parked = 1
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker_cli._progress, stats)
        await trio.sleep(worker_cli.PROGRESS_EVERY_S * 2.5)
        nursery.cancel_scope.cancel()
    lines = err.getvalue().split("\r")[1:]
    assert len(lines) == 2
    assert all(line.startswith("done 1  failed 0  parked 1  ") for line in lines)
    assert lines[-1].endswith("handler 250.0 ms mean")


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def test_a_join_of_a_member_at_its_address_is_idempotent_and_another_address_conflicts(node):
    with Client(node.url) as client:
        (me,) = client.servers()
        assert client.join(me.id, me.addr, me.http_addr) is None
        assert [s.addr for s in client.servers()] == [me.addr]
        with pytest.raises(Conflict):
            client.join(me.id, "127.0.0.1:1", me.http_addr)
        assert [s.addr for s in client.servers()] == [me.addr]
