"""doq bench stream: one short run against a served node streams, consumes, times wake-ups and
leaves no queue behind."""

from __future__ import annotations

from doq.bench.stream import parser, run

from .support import served_cluster


async def test_a_short_stream_run_reports_every_figure_and_deletes_its_queue(tmp_path):
    async with served_cluster(str(tmp_path), size=1) as (node,):
        args = parser().parse_args(
            ["--url", node.url, "--seconds", "0.3", "--wakeups", "3", "--bundle", "10"]
        )
        figures = await run(node.url, args)
        assert figures["stream_enqueue_messages_per_s"] > 0
        assert figures["stream_consume_ack_messages_per_s"] > 0
        assert figures["wakeups"] == 3 and 0 <= figures["wakeup_p50_ms"] <= figures["wakeup_p99_ms"]
        assert node.service.state.list_queues() == []
