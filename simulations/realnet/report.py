"""The run's verdict as text: a short summary for the terminal, and the markdown report that
``--report`` writes between two markers of a page (docs/reliability.md), leaving the rest of the
page as it is."""

from __future__ import annotations

import os
from collections import Counter

from simulations.realnet.check import percentile

BEGIN = "<!-- realnet-report:begin -->"
END = "<!-- realnet-report:end -->"
VIOLATIONS_SHOWN_MAX = 20


def summary(outcome) -> str:
    v = outcome.verdict
    lines = [
        f"profile {outcome.profile}, seed {outcome.seed}: {'PASS' if outcome.passed else 'FAIL'}",
        f"  {outcome.ops} operations in {outcome.seconds:.0f} s: {outcome.ok_ops} ok, "
        f"{outcome.unknown_ops} unknown, {outcome.failed_ops} failed",
        f"  faults: {_fault_counts(outcome)}",
        f"  violations: {len(v.violations)}; queues checked {v.queues_checked}, "
        f"inconclusive {len(v.inconclusive)}; missing but excused by unknown dequeues {v.excused}",
        f"  failover (ms): {_failover(outcome)}; longest without a successful enqueue "
        f"{outcome.longest_gap_us / 1000:.0f} ms",
        f"  replicas: {outcome.replicas}",
        f"  unexpected exits: {outcome.crashed or 'none'}",
    ]
    for finding in v.violations[:VIOLATIONS_SHOWN_MAX]:
        lines.append(f"  ! {finding.kind}: {finding.detail}")
    return "\n".join(lines)


def _fault_counts(outcome) -> str:
    done = Counter(e.fault for e in outcome.events if not e.skipped)
    skipped = Counter(e.fault for e in outcome.events if e.skipped)
    text = ", ".join(f"{k} {n}" for k, n in sorted(done.items()))
    if skipped:
        text += "; skipped: " + ", ".join(f"{k} {n}" for k, n in sorted(skipped.items()))
    return text


def _failover(outcome) -> str:
    ms = [us / 1000 for us in outcome.failovers_us]
    if not ms:
        return "none measured"
    return (
        f"n={len(ms)} p50 {percentile(ms, 50):.0f}, p90 {percentile(ms, 90):.0f}, "
        f"p99 {percentile(ms, 99):.0f}, max {max(ms):.0f}"
    )


def render(outcome, command: str, began: str) -> str:
    body = [
        BEGIN,
        f"Run of {began}, made by `{command}` (as root, 2 cores):",
        "",
        "```",
        summary(outcome),
        "```",
        END,
    ]
    return "\n".join(body) + "\n"


def write(path: str, section: str) -> None:
    """Replace the section between the markers of ``path``, or append it."""
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + tail
    else:
        text = text + ("\n" if text else "") + section
    with open(path, "w") as f:
        f.write(text)
