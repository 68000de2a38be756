"""Progress for long operations (sending a file, backup, restore): a rich progress bar on
stderr when stderr is a terminal, nothing in a pipe, and never a byte on stdout, so scripts
read clean output."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn


@contextlib.contextmanager
def progress(what: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    columns = [SpinnerColumn(), TextColumn(what), BarColumn(), MofNCompleteColumn()]
    console = Console(file=sys.stderr)  # rich's default is stdout: the command's output
    with Progress(*columns, transient=True, console=console) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)
