"""doq bench http: the raw client's response parsing, and one short load against a served node."""

from __future__ import annotations

import pytest

from doq.bench.http import HttpProtocolError, LoadSpec, _parse_head, report, run_load

from .support import served_cluster


def test_response_heads_give_status_length_and_close():
    head = "HTTP/1.1 200 \r\ncontent-type: application/json\r\ncontent-length: 15"
    assert _parse_head(head) == (200, 15, False)
    assert _parse_head("HTTP/1.1 204 \r\nConnection: close") == (204, 0, True)
    with pytest.raises(HttpProtocolError):
        _parse_head("SSH-2.0-OpenSSH")
    with pytest.raises(HttpProtocolError):
        _parse_head("HTTP/1.1 200 \r\nTransfer-Encoding: chunked")


@pytest.mark.parametrize("client", ["raw", "httpx"])
async def test_a_short_load_enqueues_then_drains_the_queue_and_reports_both_phases(
    tmp_path, client
):
    async with served_cluster(str(tmp_path), size=1) as (node,):
        host, port = node.http_address.split(":")
        spec = LoadSpec(host, int(port), connections=2, seconds=0.3, client=client, queue="b")
        enqueue, dequeue = await run_load(spec)
        assert len(enqueue.latencies_s) > 0 and enqueue.errors == 0
        # Each message is dequeued at most once (ack=true), and dequeuing got going.
        assert 0 < len(dequeue.latencies_s) <= len(enqueue.latencies_s)
        assert dequeue.errors == 0
        figures = report(spec, enqueue, dequeue)
        assert {"enqueue_rps", "dequeue_rps", "enqueue_p50_ms", "enqueue_p99_ms"} <= set(figures)
        assert node.service.state.queue_info("b") is None  # the bench deletes its queue


async def test_the_batch_mode_moves_messages_in_batches_and_drains_what_it_enqueued(tmp_path):
    async with served_cluster(str(tmp_path), size=1) as (node,):
        host, port = node.http_address.split(":")
        spec = LoadSpec(
            host, int(port), connections=2, seconds=0.3, client="raw", queue="b", batch=7
        )
        enqueue, dequeue = await run_load(spec)
        assert enqueue.errors == dequeue.errors == 0
        assert enqueue.messages == 7 * len(enqueue.latencies_s) > 0
        # consumed (batch dequeue + batch ack with receipts) at most what was enqueued
        assert 0 < dequeue.messages <= enqueue.messages
        figures = report(spec, enqueue, dequeue)
        assert figures["batch"] == 7 and figures["enqueue_messages_per_s"] > figures["enqueue_rps"]
