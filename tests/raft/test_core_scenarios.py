"""Consensus scenarios as text files with their expected traces (tests/raft/testdata/*.txt, run by
tests/raft/scenarios.py). A mismatch shows a unified diff of the trace; after a deliberate change
of behaviour, ``RAFT_SCENARIOS_REWRITE=1`` rewrites the files (review the diff before committing).
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

import pytest

from .scenarios import Scenario, parse, render

TESTDATA = Path(__file__).parent / "testdata"
REWRITE = os.environ.get("RAFT_SCENARIOS_REWRITE") == "1"


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.txt")), ids=lambda p: p.stem)
def test_scenario(path: Path) -> None:
    text = path.read_text()
    blocks = parse(text)
    scenario = Scenario()
    outputs = [scenario.run(block.command) for block in blocks]
    actual = render(blocks, outputs)
    if REWRITE:
        path.write_text(actual)
        return
    if actual != text:
        diff = difflib.unified_diff(
            text.splitlines(), actual.splitlines(), f"{path.name} (expected)", "actual", lineterm=""
        )
        pytest.fail("the trace differs from the scenario file:\n" + "\n".join(diff), False)


def test_the_scenario_files_exist() -> None:
    assert len(list(TESTDATA.glob("*.txt"))) >= 6


def test_a_changed_trace_fails_with_a_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "REWRITE", False)
    path = tmp_path / "changed.txt"
    path.write_text("cluster voters=n1\n----\nok\n\nstatus\n----\nn1: leader term=9\n")
    with pytest.raises(pytest.fail.Exception, match=r"(?s)-n1: leader term=9.*\+n1: follower"):
        test_scenario(path)
