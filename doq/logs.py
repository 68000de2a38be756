"""Structured logs: one line per event, for people (console) or machines (json, or stackdriver:
Google Cloud Logging's structured JSON, as the Go server's ``--logging.mode stackdriver`` wrote),
each carrying the node's ID so that the interleaved output of a local cluster stays readable."""

from __future__ import annotations

import json
import logging
import sys
import time

# Loggers that write every HTTP/2 header they decode at debug, bearer tokens included (hpack: the
# header codec under Hypercorn's HTTP/2 and the gRPC server): never below info, so that no token
# reaches a log even at --logging.level debug (docs/operations.md, "Security").
HEADER_LOGGERS = ("hpack",)
REQUEST_LOGGERS = ("hypercorn.access", "httpx")

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "node_id"}


class _NodeFilter(logging.Filter):
    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.node_id = self.node_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "node": getattr(record, "node_id", ""),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED:
                body[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body)


class StackdriverFormatter(logging.Formatter):
    """Google Cloud Logging's special fields (``severity``, ``time`` in RFC 3339, ``message``),
    so that Cloud Logging reads each line's level and time; a traceback goes inside ``message``,
    where Error Reporting looks for it."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        body = {
            "severity": record.levelname,
            "time": f"{stamp}.{int(record.created % 1 * 1_000_000):06d}Z",
            "message": message,
            "node": getattr(record, "node_id", ""),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _RESERVED:
                body[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        return json.dumps(body)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = (
            f"{stamp}.{int(record.msecs):03d} {record.levelname[0]} "
            f"[{getattr(record, 'node_id', '')}] {record.name}: {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(node_id: str, level: str, mode: str) -> None:
    formatters = {"json": JsonFormatter, "stackdriver": StackdriverFormatter}
    # The Go server wrote stackdriver lines to stdout, the rest to stderr; log agents expect that.
    handler = logging.StreamHandler(sys.stdout if mode == "stackdriver" else sys.stderr)
    handler.setFormatter(formatters.get(mode, ConsoleFormatter)())
    handler.addFilter(_NodeFilter(node_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per request, useful only when asked for: Hypercorn's access log, and httpx's line
    # for each request a node makes of its peers (clock probes several times a second, joins,
    # relays), which buried a node's own INFO lines. At debug they are written.
    for name in REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(
            root.level if root.level <= logging.DEBUG else max(root.level, logging.WARNING)
        )
    for name in HEADER_LOGGERS:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
