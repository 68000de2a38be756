"""``doq bench worker`` runs its four phases against a real node and reports every rate."""

from __future__ import annotations

import json

from doq.cli import main


def test_the_worker_benchmark_reports_raw_and_worker_rates(node, capsys):
    code = main(
        ["bench", "worker", "--url", node.url, "--messages", "200", "--concurrency", "4", "--json"]
    )
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 0 and report["messages"] == 200
    rates = [
        "raw_messages_per_s",
        "raw_stream_messages_per_s",
        "worker_messages_per_s",
        "worker_poll_messages_per_s",
    ]
    assert all(report[rate] > 0 for rate in rates), report
