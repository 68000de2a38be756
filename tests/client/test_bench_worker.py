"""``doq bench worker`` runs both phases against a real node and reports both rates."""

from __future__ import annotations

import json

from doq.cli import main


def test_the_worker_benchmark_reports_raw_and_worker_rates(node, capsys):
    code = main(
        ["bench", "worker", "--url", node.url, "--messages", "200", "--concurrency", "4", "--json"]
    )
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 0 and report["messages"] == 200
    assert report["raw_messages_per_s"] > 0 and report["worker_messages_per_s"] > 0
