"""``doq worker`` as a real process: SIGTERM lets the handlers in hand finish, nacks nothing
finished and exits 0; a second signal exits at once. Started and stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from doq.client import Client

pytestmark = pytest.mark.slow

HANDLER = """
import pathlib, time
EVENTS = pathlib.Path(__file__).with_name("events.log")
def handle(job):
    with EVENTS.open("a") as f:
        f.write(f"start {job.content}\\n")
    time.sleep(float(job.metadata.get("sleep", "1")))
    with EVENTS.open("a") as f:
        f.write(f"end {job.content}\\n")
"""
WAIT_S = 30


def _events(tmp_path) -> list[str]:
    path = tmp_path / "events.log"
    return path.read_text().split("\n")[:-1] if path.exists() else []


def _wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _start(tmp_path, node, queue: str) -> subprocess.Popen[bytes]:
    (tmp_path / "jobs_for_test.py").write_text(HANDLER)
    argv = [
        sys.executable,
        "-m",
        "doq",
        "worker",
        "jobs_for_test:handle",
        "--queue",
        queue,
        "--server",
        node.url,
        "--concurrency",
        "2",
        "--grace",
        "20",
    ]
    return subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_sigterm_finishes_the_messages_in_hand_and_exits_0(tmp_path, node):
    with Client(node.url) as c:
        c.create_queue("p-drain", ack_timeout=600)
        c.enqueue_many("p-drain", [str(i) for i in range(10)])
    proc = _start(tmp_path, node, "p-drain")
    try:
        _wait_for(lambda: sum(e.startswith("start") for e in _events(tmp_path)) >= 2, "2 jobs")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=WAIT_S) == 0, proc.stderr.read().decode()
    finally:
        _stop(proc)
    events = _events(tmp_path)
    started = {e.split()[1] for e in events if e.startswith("start")}
    ended = {e.split()[1] for e in events if e.startswith("end")}
    assert started == ended and len(ended) >= 2
    with Client(node.url) as c:
        info = c.queue("p-drain")
        left = {m.content for m in c.dequeue_many("p-drain", 100, ack=True)}
    assert info.unacked == 0 and info.ready == 10 - len(ended)
    assert left == {str(i) for i in range(10)} - ended


def test_a_second_signal_exits_at_once(tmp_path, node):
    with Client(node.url) as c:
        c.create_queue("p-twice", ack_timeout=600)
        c.enqueue("p-twice", "x", metadata={"sleep": "60"})
    proc = _start(tmp_path, node, "p-twice")
    try:
        _wait_for(lambda: _events(tmp_path) == ["start x"], "the job to start")
        os.kill(proc.pid, signal.SIGTERM)
        os.kill(proc.pid, signal.SIGINT)  # a person's second Ctrl-C
        assert proc.wait(timeout=10) == 130
    finally:
        _stop(proc)


def test_a_queue_that_does_not_exist_ends_the_worker_with_status_1(tmp_path, node):
    proc = _start(tmp_path, node, "p-missing")
    try:
        assert proc.wait(timeout=WAIT_S) == 1
        assert b"queue" in proc.stderr.read()
    finally:
        _stop(proc)
