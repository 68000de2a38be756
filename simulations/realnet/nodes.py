"""doq node processes, each started inside its own network namespace (``ip netns exec`` execs
the node in place, so the PID we hold is the node's), stopped and signalled by that PID only.

Clock skew uses libfaketime (Debian's ``faketime`` package): every node is started with it
preloaded and reading its offset from a file of its own, re-read every second
(``FAKETIME_CACHE_DURATION``), so the nemesis can move one node's wall clock while it runs. The
monotonic clock is left alone (``FAKETIME_DONT_FAKE_MONOTONIC``): Raft's timers keep real time,
as on a machine whose NTP is wrong. Without libfaketime, skew faults are skipped and reported.

A node may keep its data on a small tmpfs of its own (the disk-full fault fills it).
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys

import attrs

from simulations.realnet.netns import Host, run

HTTP_PORT = 8000
RAFT_PORT = 9000
STOP_TIMEOUT_S = 20.0
TMPFS_SIZE_MB = 256
RESERVE_BYTES = 16 * 1024 * 1024  # the node refuses writes below this (docs/operations.md)


def libfaketime() -> str | None:
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    return found[0] if found else None


@attrs.define
class Node:
    host: Host
    root: str  # this node's directory: data, log, clock file
    join: str | None  # HTTP host:port of a member, or None to bootstrap
    small_disk: bool = False
    popen: subprocess.Popen[bytes] | None = None
    expected_exit: bool = False
    mounted: bool = False
    starts: int = 0
    crashes: list[int] = attrs.Factory(list)  # exit statuses of exits nobody asked for

    @property
    def id(self) -> str:
        return f"node-{self.host.index}"

    @property
    def http(self) -> str:
        return f"{self.host.address}:{HTTP_PORT}"

    @property
    def url(self) -> str:
        return f"http://{self.http}"

    @property
    def data_dir(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def clock_file(self) -> str:
        return os.path.join(self.root, "faketime")

    @property
    def log_path(self) -> str:
        return os.path.join(self.root, "node.log")

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def prepare(self) -> None:
        os.makedirs(self.data_dir, exist_ok=True)
        if self.small_disk and not self.mounted:
            run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE_MB}m", "tmpfs", self.data_dir])
            self.mounted = True
        self.set_clock_offset_s(0)

    def set_clock_offset_s(self, offset_s: int) -> None:
        tmp = self.clock_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{offset_s:+d}s\n")
        os.replace(tmp, self.clock_file)

    def argv(self) -> list[str]:
        argv = ["ip", "netns", "exec", self.host.namespace, sys.executable, "-m", "doq"]
        argv += ["--cluster.node_id", self.id, "--storage.data_dir", self.data_dir]
        argv += ["--http.host", "0.0.0.0", "--http.port", str(HTTP_PORT)]
        argv += [
            "--http.advertise",
            self.http,
            "--raft.address",
            f"{self.host.address}:{RAFT_PORT}",
        ]
        argv += ["--raft.tick_ms", "20", "--raft.election_timeout_ticks", "25"]
        argv += ["--raft.heartbeat_ticks", "3", "--http.request_timeout", "3"]
        argv += [
            "--storage.reserve_bytes",
            str(RESERVE_BYTES),
            "--raft.snapshot_interval_entries",
            "5000",
        ]
        if self.join and self.starts == 0:
            argv += ["--cluster.join_addr", self.join]
        return argv

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        lib = libfaketime()
        if lib is not None:
            env["LD_PRELOAD"] = lib
            env["FAKETIME_TIMESTAMP_FILE"] = self.clock_file
            env["FAKETIME_CACHE_DURATION"] = "1"
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        return env

    def exits(self) -> list[int]:
        """Every exit nobody asked for, including a current one."""
        self._note_exit()
        return list(self.crashes)

    def _note_exit(self) -> None:
        if self.popen is not None and self.popen.poll() is not None and not self.expected_exit:
            self.crashes.append(self.popen.returncode)
            self.expected_exit = True  # noted once

    def start(self) -> None:
        assert not self.alive, self.id
        self._note_exit()
        self.expected_exit = False
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it until it exits
        self.popen = subprocess.Popen(
            self.argv(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            start_new_session=True,
        )
        log.close()
        self.starts += 1

    def signal(self, signum: int) -> None:
        if self.alive:
            assert self.popen is not None
            os.kill(self.popen.pid, signum)

    def kill(self) -> None:
        """kill -9: nothing that was not already durable survives."""
        self._note_exit()
        self.expected_exit = True
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGCONT (it may be paused), SIGTERM, wait; SIGKILL if it does not stop in time."""
        self._note_exit()
        self.expected_exit = True
        if self.popen is None or self.popen.poll() is not None:
            return
        os.kill(self.popen.pid, signal.SIGCONT)
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def unmount(self) -> None:
        if self.mounted:
            run(["umount", "-l", self.data_dir], check=False)
            self.mounted = False
