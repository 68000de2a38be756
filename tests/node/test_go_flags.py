"""The Go server's command lines and config files (issue 11, §4): every one of its flags is
accepted, those without an effect here named in one warning at start-up with the reason; its
sample config.yaml starts a node; keys it never had are still refused; its log levels and the
stackdriver log mode work."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from doq import logs
from doq.config import ConfigError, load
from doq.goflags import NO_EFFECT, given_without_effect, no_effect_warning

from ..support import free_port

GO_CONFIG = Path(__file__).parent / "testdata" / "go-server-config.yaml"
STARTUP_S_MAX = 30

# Every flag of kgantsov/doq's pkg/config/config.go, with a value of its type.
GO_FLAGS = {
    "profiling.enabled": "true",
    "profiling.port": "6060",
    "prometheus.enabled": "false",
    "logging.mode": "stackdriver",
    "logging.level": "warn",
    "http.port": "8000",
    "grpc.address": "localhost:10000",
    "raft.address": "localhost:9000",
    "raft.apply_timeout": "5",
    "storage.data_dir": "data",
    "storage.gc_interval": "300",
    "storage.gc_discard_ratio": "0.7",
    "storage.compression": "zstd",
    "storage.zstd_compression_level": "3",
    "storage.block_cache_size": "256",
    "storage.index_cache_size": "0",
    "storage.base_table_size": "16777216",
    "storage.base_level_size": "67108864",
    "storage.num_compactors": "4",
    "storage.num_level_zero_tables": "5",
    "storage.num_level_zero_tables_stall": "15",
    "storage.num_memtables": "5",
    "storage.value_log_file_size": "1073741823",
    "cluster.namespace": "default",
    "cluster.node_id": "node-0",
    "cluster.service_name": "",
    "cluster.join_addr": "localhost:8001",
    "queue.acknowledgement_check_interval": "1",
    "queue.default_acknowledgement_timeout": "1800",
    "queue.stats.window_side": "10",
}


def test_every_flag_of_the_go_server_is_accepted_and_the_no_effect_ones_are_named():
    argv = [part for key, value in GO_FLAGS.items() for part in (f"--{key}", value)]
    settings = load(argv, environ={})
    assert settings.log_level == "WARNING" and settings.logging__mode == "stackdriver"
    assert settings.prometheus__enabled is False
    assert settings.queue__default_acknowledgement_timeout == 1800
    given = given_without_effect(settings)
    assert set(given) == set(NO_EFFECT) - {"queue.acknowledgement_timeout"}
    warning = no_effect_warning(settings)
    assert settings.grpc__address == "localhost:10000"  # served (docs/grpc.md), not warned about
    assert warning is not None and "grpc.address" not in warning and "pprof" in warning
    assert "LMDB" in warning and warning.count("\n") == len(given)


def test_no_warning_when_no_such_setting_is_given():
    assert no_effect_warning(load([], environ={})) is None


@pytest.mark.parametrize(
    ("level", "python"),
    [("trace", "DEBUG"), ("warn", "WARNING"), ("fatal", "CRITICAL"), ("INFO", "INFO")],
)
def test_the_go_servers_log_levels(level, python):
    assert load(["--logging.level", level], environ={}).log_level == python


def test_the_go_servers_sample_config_loads_and_unknown_keys_are_still_refused(tmp_path):
    settings = load(["--config", str(GO_CONFIG)], environ={})
    assert settings.prometheus__enabled is True and settings.log_level == "INFO"
    assert "storage.block_cache_size" in given_without_effect(settings)
    wrong = tmp_path / "typo.yaml"
    wrong.write_text(GO_CONFIG.read_text() + "\nqueue:\n  acknowledgment_timeout: 60\n")
    with pytest.raises(ConfigError, match=r"unknown settings .*queue\.acknowledgment_timeout"):
        load(["--config", str(wrong)], environ={})


def test_stackdriver_lines_carry_google_clouds_fields(capsys):
    logs.setup("node-7", "INFO", "stackdriver")
    try:
        logging.getLogger("doq.test").warning("disk %s", "low")
    finally:
        logs.setup("node-7", "WARNING", "console")
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["severity"] == "WARNING" and line["message"] == "disk low"
    assert line["node"] == "node-7" and line["time"].endswith("Z")


def test_a_nodes_requests_to_its_peers_are_not_logged_line_by_line_at_info(capsys):
    """httpx's INFO line per request (clock probes several times a second) buried a node's own
    lines in `make run`'s output; at debug they are back."""
    try:
        logs.setup("node-7", "INFO", "console")
        logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1:8001/x")
        logging.getLogger("doq.test").info("elected")
        quiet = capsys.readouterr().err
        logs.setup("node-7", "DEBUG", "console")
        logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1:8001/y")
        loud = capsys.readouterr().err
    finally:
        logs.setup("node-7", "WARNING", "console")
    assert "elected" in quiet and "HTTP Request" not in quiet
    assert "HTTP Request" in loud


@pytest.mark.slow
def test_the_go_servers_sample_config_starts_a_node_with_one_warning(tmp_path):
    http_port = free_port()
    argv = [
        *("--config", str(GO_CONFIG)),
        *("--http.port", str(http_port), "--http.host", "127.0.0.1"),
        *("--raft.address", f"127.0.0.1:{free_port()}", "--storage.data_dir", str(tmp_path)),
        *("--grpc.address", f"127.0.0.1:{free_port()}"),
    ]
    log_path = tmp_path / "node.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "doq", *argv],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + STARTUP_S_MAX
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{http_port}/healthz").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
    text = log_path.read_text()
    assert text.count("settings of the Go server that have no effect here") == 1
    assert "  grpc.address: " not in text  # served now (docs/grpc.md)
    for key in ("storage.gc_interval", "profiling.enabled"):
        assert f"  {key}: " in text
