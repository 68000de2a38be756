"""The launcher's settings: flags over environment over file over defaults, and clear refusals."""

from __future__ import annotations

import pytest

from doq.config import ConfigError, Settings, env_name, load
from doq.diskguard import STORAGE_RESERVE_BYTES_DEFAULT


def test_defaults_are_the_go_servers():
    s = load([], environ={})
    assert (s.storage__data_dir, s.cluster__node_id, s.http__port, s.raft__address) == (
        "data",
        "node-0",
        8000,
        "localhost:9000",
    )
    assert s.queue__default_acknowledgement_timeout == 1800
    assert s.queue__stats__window_side == 10
    assert s.node_dir == "data/node-0"
    assert s.advertised_http == "localhost:8000"


def test_flags_win_over_environment_which_wins_over_the_file(tmp_path):
    path = tmp_path / "doq.yaml"
    path.write_text(
        "http:\n  port: 7001\n  host: 127.0.0.1\ncluster.node_id: from-file\n"
        "queue:\n  stats:\n    window_side: 30\n"
    )
    env = {env_name("http.port"): "7002", "DOQ_CLUSTER_NODE_ID": "from-env"}
    s = load(["--config", str(path), "--http.port", "7003"], environ=env)
    assert s.http__port == 7003  # flag
    assert s.cluster__node_id == "from-env"  # environment over file
    assert s.http__host == "127.0.0.1"  # file over default
    assert s.queue__stats__window_side == 30  # nested keys in the file


@pytest.mark.parametrize(
    "suffix, text",
    [
        (".json", '{"http": {"port": 7005}, "prometheus.enabled": false}'),
        (".toml", "[http]\nport = 7005\n[prometheus]\nenabled = false\n"),
    ],
)
def test_json_and_toml_files(tmp_path, suffix, text):
    path = tmp_path / f"doq{suffix}"
    path.write_text(text)
    s = load(["--config", str(path)], environ={})
    assert s.http__port == 7005 and s.prometheus__enabled is False


def test_the_disk_reserve_is_a_setting():
    assert load([], environ={}).storage__reserve_bytes == STORAGE_RESERVE_BYTES_DEFAULT
    assert load(["--storage.reserve_bytes", "0"], environ={}).storage__reserve_bytes == 0
    env = {"DOQ_STORAGE_RESERVE_BYTES": "1073741824"}
    assert load([], environ=env).storage__reserve_bytes == 1 << 30


def test_booleans_from_the_environment():
    assert load([], environ={"DOQ_PROMETHEUS_ENABLED": "false"}).prometheus__enabled is False
    assert load([], environ={"DOQ_PROMETHEUS_ENABLED": "1"}).prometheus__enabled is True


@pytest.mark.parametrize(
    "argv, env, message",
    [
        (["--http.port", "eighty"], {}, "http.port"),
        (["--http.port", "70000"], {}, "port number"),
        ([], {"DOQ_RAFT_ADDRESS": "no-port"}, "raft.address"),
        (["--logging.mode", "xml"], {}, "logging.mode"),
        (["--cluster.join_addr", "host"], {}, "cluster.join_addr"),
        (["--config", "/nonexistent/doq.yaml"], {}, "cannot read"),
        (["--storage.reserve_bytes", "-1"], {}, "reserve_bytes must not be negative"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(argv, env, message):
    with pytest.raises(ConfigError, match=message):
        load(argv, environ=env)


def test_unknown_keys_in_a_file_are_refused(tmp_path):
    path = tmp_path / "doq.yaml"
    path.write_text("http:\n  prot: 8001\n")
    with pytest.raises(ConfigError, match=r"http\.prot"):
        load(["--config", str(path)], environ={})


def test_every_setting_has_a_flag_and_an_environment_variable():
    import attrs

    from doq.config import parser

    options = {opt for action in parser()._actions for opt in action.option_strings}
    for field in attrs.fields(Settings):
        key = field.name.replace("__", ".")
        assert f"--{key}" in options
        kind = str(field.type).removesuffix(" | None")  # the Go server's no-effect settings
        value = "1" if kind in ("int", "float", "bool") else "x:1"
        if key.startswith("logging."):
            value = "info" if key.endswith("level") else "json"
        loaded = load([], environ={env_name(key): value})
        assert getattr(loaded, field.name) != field.default or value in ("1", "info")
