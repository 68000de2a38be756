"""Benchmark of RaftStorage: synced group commits and log reads. Prints figures; not a test.

    .venv/bin/python tests/storage/bench_storage.py [--seconds 3] [--dir /tmp/x] [--json]

For each batch size (1, 16, 64 entries of 100 B, hard state included as the driver does) it
reports synced ``save()`` calls per second (= transactions = fsyncs), entries per second and the
p50/p99 latency of one ``save()``; a bare one-put synced LMDB transaction as the baseline
docs/design.md quotes; then ``entries()`` read throughput and ``term()`` lookups.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

import lmdb

from raft_zmq.core.types import Entry, HardState
from raft_zmq.storage import RaftStorage

ENTRY_DATA_BYTES = 100
BATCH_SIZES = (1, 16, 64)
READ_LOG_ENTRIES = 100_000
READ_MAX_BYTES = 64 * 1024  # about what one AppendEntries carries
TERM_LOOKUPS = 200_000


def bench_save(directory: str, batch_entries: int, seconds: float) -> dict[str, float]:
    storage = RaftStorage.open(os.path.join(directory, f"save-{batch_entries}"))
    data = b"x" * ENTRY_DATA_BYTES
    latencies_s = []
    index = 1
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        batch = [Entry(i, 1, 0, data) for i in range(index, index + batch_entries)]
        start = time.perf_counter()
        storage.save(HardState(term=1, vote="node-0", commit=index - 1), batch)
        latencies_s.append(time.perf_counter() - start)
        index += batch_entries
    storage.close()
    elapsed_s = sum(latencies_s)
    return {
        "batch_entries": batch_entries,
        "saves_per_s": len(latencies_s) / elapsed_s,
        "entries_per_s": len(latencies_s) * batch_entries / elapsed_s,
        "p50_ms": statistics.median(latencies_s) * 1000,
        "p99_ms": statistics.quantiles(latencies_s, n=100)[98] * 1000,
    }


def bench_bare_lmdb_put(directory: str, seconds: float) -> dict[str, float]:
    env = lmdb.open(os.path.join(directory, "bare"), map_size=2**30, sync=True)
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        with env.begin(write=True) as txn:
            txn.put(count.to_bytes(8, "big"), b"x" * ENTRY_DATA_BYTES)
        count += 1
    elapsed_s = time.perf_counter() - start
    env.close()
    return {"txns_per_s": count / elapsed_s}


def bench_reads(directory: str) -> dict[str, float]:
    storage = RaftStorage.open(os.path.join(directory, "read"), sync=False)
    data = b"x" * ENTRY_DATA_BYTES
    for first in range(1, READ_LOG_ENTRIES + 1, 10_000):
        storage.save(None, [Entry(i, 1, 0, data) for i in range(first, first + 10_000)])
    start = time.perf_counter()
    read = 0
    index = 1
    while index <= READ_LOG_ENTRIES:
        got = storage.entries(index, READ_LOG_ENTRIES + 1, READ_MAX_BYTES)
        read += len(got)
        index = got[-1].index + 1
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(TERM_LOOKUPS):
        storage.term(READ_LOG_ENTRIES - i % 1000)  # the hot path: near the end, cached
    cached_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(TERM_LOOKUPS):
        storage.term(1 + i % 50_000)  # far behind: an LMDB read and a checksum
    uncached_s = time.perf_counter() - start
    storage.close()
    return {
        "entries_read_per_s": read / read_s,
        "read_mb_per_s": read * ENTRY_DATA_BYTES / read_s / 1e6,
        "cached_term_lookups_per_s": TERM_LOOKUPS / cached_s,
        "uncached_term_lookups_per_s": TERM_LOOKUPS / uncached_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each save run")
    parser.add_argument("--dir", default=None, help="where to put the environments (a disk)")
    parser.add_argument("--json", action="store_true", help="also print one JSON line at the end")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="bench-storage-", dir=args.dir)
    try:
        print(f"load average before: {os.getloadavg()}")
        results: dict[str, object] = {"bare_lmdb": bench_bare_lmdb_put(directory, args.seconds)}
        print(f"bare LMDB one put per synced txn: {results['bare_lmdb']['txns_per_s']:,.0f} txn/s")
        saves = [bench_save(directory, n, args.seconds) for n in BATCH_SIZES]
        for r in saves:
            print(
                f"save() batch {r['batch_entries']:>3} x {ENTRY_DATA_BYTES} B, sync: "
                f"{r['saves_per_s']:,.0f} txn/s, {r['entries_per_s']:,.0f} entries/s, "
                f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms"
            )
        reads = bench_reads(directory)
        print(
            f"entries(): {reads['entries_read_per_s']:,.0f} entries/s "
            f"({reads['read_mb_per_s']:.1f} MB/s of data, {READ_MAX_BYTES // 1024} KiB batches); "
            f"term(): {reads['cached_term_lookups_per_s']:,.0f}/s cached, "
            f"{reads['uncached_term_lookups_per_s']:,.0f}/s from LMDB"
        )
        print(f"load average after: {os.getloadavg()}")
        if args.json:
            results.update(saves=saves, reads=reads, load_avg=os.getloadavg())
            print(json.dumps(results))
    finally:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
