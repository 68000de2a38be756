"""``python -m simulations``: the commands and what they print."""

from __future__ import annotations

import json

import pytest

from simulations.cli import main
from simulations.plants import PLANT_NAMES


def test_plants_lists_every_planted_bug(capsys):
    assert main(["plants"]) == 0
    out = capsys.readouterr().out
    for letter, name in zip("abcd", PLANT_NAMES):
        assert f"({letter}) {name}" in out


def test_run_prints_a_summary_and_succeeds(capsys):
    assert main(["run", "--seed", "3", "--time", "2"]) == 0
    out = capsys.readouterr().out
    assert "seed 3:" in out and "trace digest" in out and out.rstrip().endswith("RESULT: OK")


def test_run_reports_a_violation_with_its_seed_invariant_events_and_replay(capsys):
    code = main(["run", "--seed", "0", "--time", "10", "--plant", "ack_before_sync"])
    out = capsys.readouterr().out
    assert code == 1
    assert "VIOLATION (seed 0)" in out and "last " in out and " events:" in out
    assert "replay: python -m simulations run --seed 0 --nodes" in out
    assert "--plant ack_before_sync" in out


def test_run_writes_the_whole_trace_when_asked(tmp_path, capsys):
    path = tmp_path / "trace.txt"
    assert main(["run", "--seed", "2", "--time", "1", "--trace", str(path)]) == 0
    lines = path.read_text().splitlines()
    assert lines[0].split(maxsplit=1)[1].startswith("seed 2:")
    assert len(lines) > 100


def test_swarm_prints_a_table_a_progress_bar_and_a_json_summary_last(capsys):
    assert main(["swarm", "--seeds", "0-2", "--time", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert "3/3 seeds" in captured.err
    lines = captured.out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["seeds"] == 3 and summary["violations"] == 0
    assert summary["events"] > 0 and summary["sim_seconds"] > 3
    assert any(line.startswith("faults injected") for line in lines)


def test_a_planted_swarm_succeeds_once_the_plant_is_caught(capsys):
    args = ["swarm", "--seeds", "0-5", "--time", "10", "--plant", "vote_without_log_check"]
    assert main([*args, "--stop-on-violation"]) == 0
    assert "seed 0: " in capsys.readouterr().out  # the invariant depends on the seed's profile


@pytest.mark.parametrize("seeds", ["5-2", "x", "-1"])
def test_a_bad_seed_range_is_refused(seeds, capsys):
    with pytest.raises(SystemExit):
        main(["swarm", "--seeds", seeds])
    assert "A-B" in capsys.readouterr().err
