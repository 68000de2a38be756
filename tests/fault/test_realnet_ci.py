"""The CI profile of the real-network fault suite (docs/reliability.md): 3 doq processes, each
in its own network namespace, every fault class once, the history checked. Needs root: it
installs iptables and faketime with apt-get when they are missing, and skips, saying why, where
it cannot run."""

from __future__ import annotations

import pytest

from simulations.realnet import cli
from simulations.realnet.nodes import libfaketime
from simulations.realnet.run import PROFILES, execute, recheck

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def runnable() -> None:
    cli.install()
    reason = cli.why_not()
    if reason:
        pytest.skip(f"the real-network fault suite cannot run here: {reason}")
    if libfaketime() is None:
        pytest.skip("the real-network fault suite needs libfaketime (Debian package faketime)")


def test_the_ci_profile_loses_nothing_and_stays_linearizable(runnable, tmp_path):
    outcome = execute(PROFILES["ci"], seed=1, workdir=str(tmp_path))
    report = cli.summary(outcome)
    assert not [e.fault for e in outcome.events if e.skipped], report
    assert {e.fault for e in outcome.events} >= set(cli.FAULTS), report
    assert outcome.verdict.violations == [], report
    assert outcome.verdict.queues_checked > 0 and not outcome.verdict.inconclusive, report
    assert not outcome.crashed, report
    assert len(set(outcome.replicas.values())) == 1, report
    assert outcome.ok_ops > 1000, report
    # What the run kept is enough to check it again to the same verdict (``recheck``).
    again = recheck(str(tmp_path))
    assert cli.summary(again) == report
