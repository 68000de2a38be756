"""How the command-line client prints: human tables (rich) by default, ``-o json`` (one JSON
document) or ``-o jsonl`` (one JSON object a line) for scripts; and its exit codes, which
scripts can rely on (docs/client.md, "Command line")."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table

from doq.client import errors

EXIT_OK = 0
EXIT_ERROR = 1  # a server error, or anything not below
EXIT_USAGE = 2  # bad arguments (argparse's own code)
EXIT_NOT_FOUND = 3  # no such queue or message
EXIT_EMPTY = 4  # recv: nothing to take
EXIT_CONFLICT = 5  # a conflict, or a stale receipt
EXIT_INVALID = 6  # the server refused a value (422), or the body was too large
EXIT_UNAVAILABLE = 7  # no node answered, or none had a leader, within the retries
EXIT_NO_ROOM = 8  # the leader's disk is below its reserve (507)
EXIT_REFUSED = 9  # offline: the data directory belongs to a running node

OUTPUTS = ("table", "text", "json", "jsonl")  # text: the Go CLI's name for the table


def exit_code_for(exc: errors.DoqError) -> int:
    kinds: list[tuple[type[errors.DoqError], int]] = [
        (errors.NotFound, EXIT_NOT_FOUND),
        (errors.QueueEmpty, EXIT_EMPTY),
        (errors.Conflict, EXIT_CONFLICT),
        (errors.ValidationFailed, EXIT_INVALID),
        (errors.TooLarge, EXIT_INVALID),
        (errors.Unavailable, EXIT_UNAVAILABLE),
        (errors.InsufficientStorage, EXIT_NO_ROOM),
    ]
    return next((code for kind, code in kinds if isinstance(exc, kind)), EXIT_ERROR)


def plain(value: Any) -> Any:
    """attrs values as JSON-ready dicts (message IDs as strings, as the API writes them)."""
    if attrs.has(type(value)):
        body = attrs.asdict(value, recurse=False)
        return {k: plain(v) for k, v in body.items() if k != "client"}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _ids_as_text(row: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if k == "id" and isinstance(v, int) else v for k, v in row.items()}


def emit(rows: Sequence[Any], columns: Sequence[str], output: str, *, single: bool = False) -> None:
    """Prints ``rows`` (attrs values or dicts); ``single``: ``-o json`` prints the one row as an
    object rather than a list."""
    dicts = [_ids_as_text(plain(r)) for r in rows]
    if output == "json":
        print(json.dumps(dicts[0] if single and dicts else dicts, indent=2))
    elif output == "jsonl":
        for row in dicts:
            print(json.dumps(row))
    else:
        table = Table(*columns, box=None, header_style="bold", pad_edge=False)
        for row in dicts:
            table.add_row(*[_cell(_lookup(row, c)) for c in columns])
        Console(width=200 if not sys.stdout.isatty() else None).print(table)


def _lookup(row: dict[str, Any], column: str) -> Any:
    value: Any = row
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def fail(message: str, code: int) -> int:
    print(f"doq: {message}", file=sys.stderr)
    return code
