"""The command line: run a profile, print the verdict, optionally write the report.

    python -m simulations.realnet ci --seed 1
    python -m simulations.realnet soak --seed 1 --report docs/reliability.md
    python -m simulations.realnet recheck --workdir DIR --report docs/reliability.md

``recheck`` runs the checks again over what a finished run kept in its ``--workdir``.

Needs root (namespaces, iptables, mounts). ``--install`` first installs the Debian packages it
uses (iptables, faketime) with apt-get.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import attrs

from simulations.realnet.nemesis import FAULTS
from simulations.realnet.netns import missing_tools
from simulations.realnet.nodes import libfaketime
from simulations.realnet.report import render, summary, write

__all__ = ["FAULTS", "install", "main", "summary", "why_not"]
from simulations.realnet.run import PROFILES, execute, recheck

DEBIAN_PACKAGES = ("iptables", "faketime")


def why_not() -> str | None:
    """Why this machine cannot run the suite, or None."""
    if sys.platform != "linux":
        return "Linux only (network namespaces)"
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables, tmpfs mounts)"
    missing = missing_tools()
    if missing:
        return f"missing {', '.join(missing)} (apt-get install {' '.join(DEBIAN_PACKAGES)})"
    return None


def install() -> None:
    """Install the Debian packages when root and they are missing."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    if not missing_tools() and libfaketime() is not None:
        return
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", *DEBIAN_PACKAGES], check=False)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations.realnet", description=__doc__)
    parser.add_argument("profile", choices=[*sorted(PROFILES), "recheck"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workdir", help="keep logs and the history here (default: a temporary directory)"
    )
    parser.add_argument("--report", help="write the markdown report to this file")
    parser.add_argument(
        "--faults",
        default=",".join(FAULTS),
        help="comma-separated fault classes to schedule (default: all)",
    )
    parser.add_argument("--seconds", type=float, help="run this long instead of the profile's time")
    parser.add_argument("--install", action="store_true", help="apt-get install what is missing")
    args = parser.parse_args(argv)
    # SIGTERM (and SIGINT, which a background job ignores) end the run through its cleanup.
    signal.signal(signal.SIGTERM, _interrupt)
    if args.install:
        install()
    if args.profile == "recheck":
        if not args.workdir:
            parser.error("recheck needs the --workdir of a finished run")
        return _recheck(args.workdir, args.report, argv)
    chosen = tuple(args.faults.split(","))
    unknown = set(chosen) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    reason = why_not()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    workdir = args.workdir or tempfile.mkdtemp(prefix="doq-realnet-")
    os.makedirs(workdir, exist_ok=True)
    began = _began()
    profile = PROFILES[args.profile]
    if args.seconds:
        profile = attrs.evolve(profile, plan=attrs.evolve(profile.plan, seconds=args.seconds))
    outcome = execute(
        profile,
        args.seed,
        workdir,
        log=lambda line: print(line, flush=True),
        faults=chosen,
    )
    print(summary(outcome))
    print(f"history, nemesis log and node logs: {workdir}")
    if args.report:
        command = "python -m simulations.realnet " + shlex.join(argv)
        write(args.report, render(outcome, command, began))
    return 0 if outcome.passed else 1


def _recheck(workdir: str, report: str | None, argv: list[str]) -> int:
    began = _began()
    outcome = recheck(workdir)
    print(summary(outcome))
    if report:
        command = "python -m simulations.realnet " + shlex.join(argv)
        write(report, render(outcome, command, began))
    return 0 if outcome.passed else 1


def _began() -> str:
    load = os.getloadavg()[0]
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()) + f", load average {load:.1f}"
