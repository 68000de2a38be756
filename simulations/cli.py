"""``python -m simulations``: run one seed, run a swarm of seeds, list the planted bugs.

- ``run --seed S [--nodes N] [--time T] [--plant NAME] [--trace FILE]`` prints a summary of the
  run; on a violation, the seed, the invariant broken, the last events before it and the command
  that replays it; the exit status is 1 then.
- ``swarm --seeds A-B [--nodes N] [--time T] [--plant NAME] [--jobs J] [--stop-on-violation]
  [--json]`` runs every seed of the range with a progress bar on stderr and prints a summary
  table (seeds, simulated time, events, faults injected, violations, and each violating seed);
  with ``--json`` the last line is one JSON object with at least ``seeds``, ``violations``,
  ``events`` and ``sim_seconds``.
- ``plants`` lists the planted bugs.

Wall-clock time is read here, and only here, to report the simulator's speed; it never reaches a
run (a run's trace depends on its seed alone).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from simulations.plants import PLANT_NAMES, PLANT_SEEDS_MAX, PLANTS
from simulations.simulation import DEFAULT_TIME_S, RunConfig, RunResult, Simulation

PROGRESS_BAR_CHARS = 30
PLANT_CHECK_TIME_S = 10.0  # as tests/simulations/test_plants.py runs them


def run_one(config: RunConfig) -> RunResult:
    return Simulation(config).run()


def replay_command(result: RunResult, config: RunConfig) -> str:
    parts = ["python -m simulations run", f"--seed {result.seed}", f"--nodes {result.nodes}"]
    if config.time_s != DEFAULT_TIME_S:
        parts.append(f"--time {config.time_s:g}")
    parts.extend(f"--plant {name}" for name in result.plants)
    return " ".join(parts)


def _seed_range(text: str) -> range:
    try:
        if "-" in text:
            first, last = (int(part) for part in text.split("-", 1))
        else:
            first = last = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A-B (two integers), got {text!r}") from None
    if first < 0 or last < first:
        raise argparse.ArgumentTypeError(f"expected 0 <= A <= B, got {text!r}")
    return range(first, last + 1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulations",
        description="Deterministic network-fault simulations of whole doq clusters.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "swarm"):
        sub = commands.add_parser(name, help=f"{name} {'one seed' if name == 'run' else 'seeds'}")
        if name == "run":
            sub.add_argument("--seed", type=int, required=True)
            sub.add_argument("--trace", metavar="FILE", help="write the whole trace ('-': stdout)")
        else:
            sub.add_argument("--seeds", type=_seed_range, required=True, metavar="A-B")
            sub.add_argument("--jobs", type=int, default=1, help="processes (default 1)")
            sub.add_argument("--stop-on-violation", action="store_true")
            sub.add_argument("--json", action="store_true", help="end with a JSON summary line")
        sub.add_argument("--nodes", type=int, choices=(3, 5, 7), help="default: per seed")
        sub.add_argument("--time", type=float, default=DEFAULT_TIME_S, help="virtual seconds")
        sub.add_argument("--plant", action="append", default=[], choices=PLANT_NAMES)
    plants = commands.add_parser("plants", help="list the planted bugs (--check: catch each)")
    plants.add_argument(
        "--check",
        action="store_true",
        help=f"run seeds from 0 with each plant until caught (at most {PLANT_SEEDS_MAX})",
    )
    plants.add_argument("--time", type=float, default=PLANT_CHECK_TIME_S, help="virtual seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "plants":
        return _plants(args)
    if args.command == "run":
        return _run(args)
    return _swarm(args)


# --- plants ------------------------------------------------------------------------------------
def _plants(args: argparse.Namespace) -> int:
    width = max(len(p.name) for p in PLANTS)
    for p in PLANTS:
        finding = f" (issue 10 finding {p.finding})" if p.finding else ""
        print(f"({p.letter}) {p.name:<{width}}  [{p.where}]{finding} {p.description}")
    if not args.check:
        return 0
    missed = 0
    for p in PLANTS:
        targeted = {} if p.drawn else p.targeted
        on = f" on its targeted profile {targeted}" if targeted else ""
        caught = _first_catch(p.name, args.time, targeted)
        if caught is None:
            missed += 1
            print(f"({p.letter}) {p.name}: NOT caught in seeds 0-{PLANT_SEEDS_MAX - 1}{on}")
        else:
            print(f"({p.letter}) {p.name}: caught at seed {caught.seed}{on} ({caught.invariant})")
        sys.stdout.flush()
    return 1 if missed else 0


def _first_catch(name: str, time_s: float, targeted: dict[str, Any]) -> RunResult | None:
    """The first seed from 0 whose profile catches the plant ``name``: the seed's drawn one, or
    with ``targeted`` (RunConfig fields) instead of what it draws."""
    for seed in range(PLANT_SEEDS_MAX):
        config = RunConfig(seed=seed, time_s=time_s, plants=frozenset({name}), **targeted)
        result = run_one(config)
        if not result.ok:
            return result
    return None


# --- run ---------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    config = RunConfig(
        seed=args.seed,
        nodes=args.nodes,
        time_s=args.time,
        plants=frozenset(args.plant),
        keep_trace=args.trace is not None,
    )
    started = time.perf_counter()
    result = run_one(config)
    wall_s = time.perf_counter() - started
    if args.trace is not None and result.trace is not None:
        _write_trace(args.trace, result.trace)
    print(_summary(result, wall_s))
    if not result.ok:
        print(_violation_report(result, config))
        return 1
    return 0


def _write_trace(path: str, lines: Sequence[str]) -> None:
    text = "\n".join(lines) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def _summary(r: RunResult, wall_s: float) -> str:
    s = r.stats
    faults = ", ".join(f"{k} {v}" for k, v in r.faults.items()) or "none"
    rate = r.events / wall_s if wall_s > 0 else 0.0
    lines = [
        f"seed {r.seed}: {r.profile}",
        f"plants: {', '.join(r.plants) or 'none'}",
        f"simulated {r.sim_seconds:.1f} s in {wall_s:.1f} s of wall time: {r.events:,} events "
        f"({rate:,.0f} events/s), trace digest {r.trace_digest}",
        f"faults injected: {r.faults_injected} ({faults})",
        f"client operations: {s.get('ops', 0)} (ok {s.get('ops_ok', 0)}, failed "
        f"{s.get('ops_failed', 0)}, unknown {s.get('ops_unknown', 0)}); unknown resolved from "
        f"the log: {s.get('ops_resolved_done', 0)} done, {s.get('ops_resolved_not_done', 0)} "
        f"not done, {s.get('ops_unresolved', 0)} unresolved",
        f"raft: {s.get('elections', 0)} terms with a leader, commit index "
        f"{s.get('commit_index', 0)}, {s.get('crashes', 0)} crashes ({s.get('writes_lost', 0)} "
        f"writes lost), {s.get('pauses', 0)} pauses, snapshots {s.get('snapshots_taken', 0)} "
        f"taken / {s.get('snapshots_sent', 0)} sent / {s.get('snapshots_installed', 0)} installed",
        f"network: {s.get('net_sent', 0)} sent, {s.get('net_dropped', 0)} dropped, "
        f"{s.get('net_cut', 0)} cut, {s.get('net_duplicated', 0)} duplicated, "
        f"{s.get('net_held_back', 0)} reordered, {s.get('net_stalled', 0)} stalled",
    ]
    if r.ok:
        inconclusive = s.get("linearizability_inconclusive", 0)
        lines.append(
            f"checks passed: raft safety, replicas agree, queue safety, clock bound "
            f"({s.get('clock_checked', 0)} commands), liveness (settled "
            f"{s.get('recovery_ms', 0)} ms after healing), linearizability "
            f"({s.get('linearizability_ops', 0)} operations, "
            f"{s.get('linearizability_states', 0)} states"
            + (f", {inconclusive} queue(s) inconclusive" if inconclusive else "")
            + ")"
        )
        lines.append("RESULT: OK")
    return "\n".join(lines)


def _violation_report(r: RunResult, config: RunConfig) -> str:
    lines = [
        f"VIOLATION (seed {r.seed}) at {r.violation_s:.6f} s: {r.invariant}",
        *(f"  {line}" for line in r.detail.splitlines()),
        f"last {len(r.trace_tail)} events:",
        *(f"  {line}" for line in r.trace_tail),
        f"replay: {replay_command(r, config)}",
    ]
    return "\n".join(lines)


# --- swarm -------------------------------------------------------------------------------------
def _results(configs: list[RunConfig], jobs: int) -> Iterator[RunResult]:
    if jobs <= 1:
        for config in configs:
            yield run_one(config)
        return
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        yield from pool.imap(run_one, configs)


def _swarm(args: argparse.Namespace) -> int:
    seeds: range = args.seeds
    configs = [
        RunConfig(seed=seed, nodes=args.nodes, time_s=args.time, plants=frozenset(args.plant))
        for seed in seeds
    ]
    started = time.perf_counter()
    done: list[RunResult] = []
    violations: list[RunResult] = []
    for result in _results(configs, args.jobs):
        done.append(result)
        if not result.ok:
            violations.append(result)
        _progress(len(done), len(configs), len(violations), time.perf_counter() - started)
        if violations and args.stop_on_violation:
            break
    sys.stderr.write("\n")
    wall_s = time.perf_counter() - started
    print(_swarm_table(seeds, done, violations, wall_s, args))
    if args.json:
        print(json.dumps(_swarm_json(done, violations, wall_s), sort_keys=True))
    if args.plant:
        return 0 if violations else 1  # a planted bug must be caught
    return 1 if violations else 0


def _progress(done: int, total: int, violations: int, wall_s: float) -> None:
    filled = PROGRESS_BAR_CHARS * done // total
    bar = "#" * filled + "." * (PROGRESS_BAR_CHARS - filled)
    per_min = done / wall_s * 60 if wall_s > 0 else 0.0
    sys.stderr.write(
        f"\r[{bar}] {done}/{total} seeds, {violations} violations, {per_min:.1f} seeds/min"
    )
    sys.stderr.flush()


def _swarm_table(
    seeds: range,
    done: list[RunResult],
    violations: list[RunResult],
    wall_s: float,
    args: argparse.Namespace,
) -> str:
    events = sum(r.events for r in done)
    sim_s = sum(r.sim_seconds for r in done)
    faults: Counter[str] = Counter()
    for r in done:
        faults.update(r.faults)
    rows = [
        ("seeds", f"{len(done)} of {seeds.start}-{seeds.stop - 1}"),
        ("plants", ", ".join(args.plant) or "none"),
        ("simulated time", f"{sim_s:,.0f} s"),
        ("events", f"{events:,}"),
        ("faults injected", f"{sum(faults.values()):,}"),
        ("violations", f"{len(violations)}"),
        (
            "wall time",
            f"{wall_s:,.1f} s ({len(done) / wall_s * 60:,.1f} seeds/min, "
            f"{events / wall_s:,.0f} events/s)"
            if wall_s > 0
            else "0 s",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if faults:
        lines.append("faults by kind   " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())))
    for r in violations:
        config = RunConfig(seed=r.seed, time_s=args.time, plants=frozenset(r.plants))
        first = r.detail.splitlines()[0] if r.detail else ""
        lines.append(f"seed {r.seed}: {r.invariant}: {first}")
        lines.append(f"  replay: {replay_command(r, config)}")
    return "\n".join(lines)


def _swarm_json(done: list[RunResult], violations: list[RunResult], wall_s: float) -> dict:
    return {
        "seeds": len(done),
        "violations": len(violations),
        "events": sum(r.events for r in done),
        "sim_seconds": round(sum(r.sim_seconds for r in done), 3),
        "faults": sum(r.faults_injected for r in done),
        "wall_seconds": round(wall_s, 3),
        "violating_seeds": [r.seed for r in violations],
        "invariants": sorted({r.invariant for r in violations if r.invariant}),
    }
