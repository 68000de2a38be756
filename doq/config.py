"""The node's settings: the Go server's flag names, environment variables and a config file.

Every setting has a dotted key (``http.port``). It can be given as a flag (``--http.port 8001``),
as an environment variable (``DOQ_HTTP_PORT=8001``: ``DOQ_`` + the key in upper case with dots as
underscores) or in a file named by ``--config`` (YAML, JSON or TOML, nested ``{http: {port: 8001}}``
or dotted ``{"http.port": 8001}``). Flags win over the environment, the environment over the file,
the file over the defaults. Unknown keys and values of the wrong type are refused with a message
that names them: a typo must not silently start a node with a default.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import yaml

from doq.caps import (
    LONG_POLLS_IN_FLIGHT_MAX,
    REQUESTS_IN_FLIGHT_MAX,
    REQUESTS_PER_CONNECTION_MAX,
    WEBSOCKET_STREAMS_MAX,
)
from doq.commands import NODE_ID_CHARS_MAX
from doq.diskguard import STORAGE_RESERVE_BYTES_DEFAULT
from doq.goflags import NO_EFFECT
from doq.state.unsynced import BOOT_ID_PATH_DEFAULT

ENV_PREFIX = "DOQ_"
LOG_MODES = ("console", "json", "stackdriver")
# Python's levels, and the Go server's (zerolog's) names for them: trace is below debug there,
# and Python has nothing below debug; fatal and panic end the Go process, critical here.
LOG_LEVELS = {
    "trace": "DEBUG",
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARNING",
    "warning": "WARNING",
    "error": "ERROR",
    "fatal": "CRITICAL",
    "panic": "CRITICAL",
    "critical": "CRITICAL",
}


class ConfigError(ValueError):
    """The settings cannot start a node; the message says which one and why."""


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value <= 0:
        raise ConfigError(f"{attribute.name} must be positive, got {value}")


def _not_negative(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise ConfigError(f"{attribute.name} must not be negative, got {value}")


def _port(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{attribute.name} must be a port number, got {value}")


@attrs.frozen
class Settings:
    """Field names are the dotted keys with dots as double underscores."""

    storage__data_dir: str = "data"
    # Writes answer 507 while the data directory's disk has less free (doq/diskguard.py); 0: never.
    storage__reserve_bytes: int = attrs.field(
        default=STORAGE_RESERVE_BYTES_DEFAULT, validator=_not_negative
    )
    # fdatasync the queue state at every apply (doq/state/unsynced.py): not needed for safety, the
    # Raft log is the state's durability; on, a write's answer waits for a second fsync.
    storage__state_sync: bool = False
    storage__boot_id_file: str = BOOT_ID_PATH_DEFAULT  # tests only: a file standing for the boot
    cluster__node_id: str = "node-0"
    cluster__join_addr: str = ""  # the HTTP host:port of any member; empty: bootstrap if new
    # Kubernetes (doq/kubernetes, docs/kubernetes.md): with a headless service name, the node id
    # comes from the pod name and the peers from the service's DNS; pod 0 bootstraps.
    cluster__service_name: str = ""
    cluster__namespace: str = ""  # default: the pod's own (its service account's namespace)
    cluster__domain: str = "cluster.local"
    cluster__leader_service: str = ""  # the client Service whose EndpointSlice names the leader
    cluster__dns_file: str = ""  # tests only: a JSON list of peers' HTTP host:port, as DNS
    http__host: str = "0.0.0.0"  # where the HTTP server listens
    http__port: int = attrs.field(default=8000, validator=_port)
    http__advertise: str = ""  # the HTTP host:port other nodes use; default: raft host + port
    http__max_body_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=_positive)
    http__request_timeout: float = attrs.field(default=10.0, validator=_positive)
    # The Go server's gRPC service (doq/grpc, docs/grpc.md) on host:port; None: not served.
    grpc__address: str | None = None
    http__fast_path: bool = True  # enqueue/dequeue served in front of Quart (doq/api/fastpath.py)
    # Security (doq/security.py, docs/operations.md "Security"). Tokens: lines of
    # '<token> <scope>[,<scope>...]' in a file, or in the value itself (';' between entries).
    http__tokens_file: str = ""
    http__tokens: str = attrs.field(default="", repr=False)
    http__certfile: str = ""  # with keyfile: HTTPS on the listener and between the nodes
    http__keyfile: str = ""
    http__ca_file: str = ""  # verifies the other nodes' certificates; default: system CAs
    http__requests_in_flight_max: int = attrs.field(
        default=REQUESTS_IN_FLIGHT_MAX, validator=_positive
    )
    http__requests_per_connection_max: int = attrs.field(
        default=REQUESTS_PER_CONNECTION_MAX, validator=_positive
    )
    http__long_polls_in_flight_max: int = attrs.field(
        default=LONG_POLLS_IN_FLIGHT_MAX, validator=_positive
    )
    http__websocket_streams_max: int = attrs.field(
        default=WEBSOCKET_STREAMS_MAX, validator=_positive
    )
    raft__address: str = "localhost:9000"  # where Raft listens and what peers dial
    raft__tick_ms: int = attrs.field(default=50, validator=_positive)
    raft__election_timeout_ticks: int = attrs.field(default=20, validator=_positive)
    raft__heartbeat_ticks: int = attrs.field(default=2, validator=_positive)
    raft__snapshot_interval_entries: int = attrs.field(default=50_000, validator=_positive)
    raft__faults_file: str = ""  # a JSON fault spec re-read while running (fault tests only)
    # The cluster's CURVE key (doq/keys.py): a file 'doq keys init' wrote, or the key itself
    # (an environment variable from a Kubernetes Secret). Neither: peer links in plaintext.
    raft__curve_key_file: str = ""
    raft__curve_key: str = attrs.field(default="", repr=False)
    queue__default_acknowledgement_timeout: int = attrs.field(default=1800, validator=_positive)
    # Caps (doq/quotas.py): queues in the cluster, messages held by one queue; 0: none.
    queue__queues_max: int = attrs.field(default=0, validator=_not_negative)
    queue__messages_per_queue_max: int = attrs.field(default=0, validator=_not_negative)
    queue__stats__window_side: int = attrs.field(default=10, validator=_positive)
    prometheus__enabled: bool = True
    logging__level: str = "info"  # also the Go server's (zerolog's) names: trace, warn, fatal, ...
    logging__mode: str = "console"  # console, json, or stackdriver (Google Cloud's JSON lines)
    # The Go server's settings that have no effect here (doq/goflags.py says why for each): they
    # are accepted, so that its command lines and config files start a node, and one warning at
    # start-up names those that were given. None: not given.
    raft__apply_timeout: int | None = None
    profiling__enabled: bool | None = None
    profiling__port: int | None = None
    queue__acknowledgement_check_interval: int | None = None
    queue__acknowledgement_timeout: int | None = None
    storage__gc_interval: int | None = None
    storage__gc_discard_ratio: float | None = None
    storage__compression: str | None = None
    storage__zstd_compression_level: int | None = None
    storage__block_cache_size: int | None = None
    storage__index_cache_size: int | None = None
    storage__base_table_size: int | None = None
    storage__base_level_size: int | None = None
    storage__num_compactors: int | None = None
    storage__num_level_zero_tables: int | None = None
    storage__num_level_zero_tables_stall: int | None = None
    storage__num_memtables: int | None = None
    storage__value_log_file_size: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.logging__mode not in LOG_MODES:
            raise ConfigError(
                f"logging.mode is one of {', '.join(LOG_MODES)}, got {self.logging__mode!r}"
            )
        if self.logging__level.lower() not in LOG_LEVELS:
            raise ConfigError(
                f"unknown logging.level {self.logging__level!r} "
                f"(one of {', '.join(sorted(LOG_LEVELS))})"
            )
        if not 1 <= len(self.cluster__node_id) <= NODE_ID_CHARS_MAX:
            raise ConfigError(f"cluster.node_id must be 1 to {NODE_ID_CHARS_MAX} characters")
        _split_host_port("raft.address", self.raft__address)
        if self.cluster__join_addr:
            _split_host_port("cluster.join_addr", self.cluster__join_addr)
        if self.http__advertise:
            _split_host_port("http.advertise", self.http__advertise)

    @property
    def log_level(self) -> str:
        """logging.level as Python's level name (the Go server's names mapped)."""
        return LOG_LEVELS[self.logging__level.lower()]

    @property
    def node_dir(self) -> str:
        """Several nodes may share a data directory: each keeps its data under its node ID."""
        return os.path.join(self.storage__data_dir, self.cluster__node_id)

    @property
    def advertised_http(self) -> str:
        if self.http__advertise:
            return self.http__advertise
        host, _ = _split_host_port("raft.address", self.raft__address)
        return f"{host}:{self.http__port}"


def _split_host_port(key: str, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(f"{key} must be host:port, got {value!r}")
    return host, int(port)


KEYS: dict[str, attrs.Attribute[Any]] = {
    field.name.replace("__", "."): field for field in attrs.fields(Settings)
}


def env_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "_").upper()


def _convert(key: str, raw: Any) -> Any:
    """A value from a flag, the environment or a file, as the setting's type."""
    kind = str(KEYS[key].type).removesuffix(" | None")  # an optional setting: given, a value
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if not isinstance(raw, str | int | float) or isinstance(raw, bool):
            raise ValueError(raw)
        return str(raw)
    except ValueError:
        raise ConfigError(f"{key}: {raw!r} is not a valid {kind}") from None


def _flatten(body: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in body.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and key not in KEYS:
            flat.update(_flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def read_file(path: str) -> dict[str, Any]:
    """A config file's settings as {dotted key: value}."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        if path.endswith(".toml"):
            body = tomllib.loads(raw.decode())
        elif path.endswith(".json"):
            body = json.loads(raw)
        else:
            body = yaml.safe_load(raw) or {}
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} does not parse: {exc}") from None
    if not isinstance(body, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    flat = _flatten(body)
    unknown = sorted(set(flat) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown settings in {path}: {', '.join(unknown)}")
    return flat


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="doq",
        description="Start a doq node. Every flag can also be set as DOQ_<KEY> in the "
        "environment or in a --config file; flags win over the environment, the environment "
        "over the file. Other commands: 'doq devcluster', 'doq bench state|http'.",
    )
    p.add_argument("--config", help="a YAML, JSON or TOML file of settings")
    for key, field in KEYS.items():
        p.add_argument(
            f"--{key}",
            dest=field.name,
            default=None,
            metavar=str(field.type).removesuffix(" | None").upper(),
            help=(
                f"(the Go server's; no effect here: {NO_EFFECT[key]})"
                if key in NO_EFFECT
                else f"(default {field.default!r}; env {env_name(key)})"
            ),
        )
    return p


def load(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> Settings:
    args = parser().parse_args(list(argv))
    values: dict[str, Any] = {}
    config_path = args.config or environ.get(ENV_PREFIX + "CONFIG")
    if config_path:
        values.update(read_file(config_path))
    for key in KEYS:
        if env_name(key) in environ:
            values[key] = environ[env_name(key)]
    for key, field in KEYS.items():
        flag = getattr(args, field.name)
        if flag is not None:
            values[key] = flag
    try:
        return Settings(**{KEYS[k].name: _convert(k, v) for k, v in values.items()})
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
