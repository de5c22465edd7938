"""Rich progress bars for long work; ``set_quiet(True)`` (the CLI's --quiet) silences them."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

_QUIET = False


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def is_quiet() -> bool:
    return _QUIET or os.environ.get("MEDREP_QUIET") == "1"


class _Task:
    def __init__(self, progress, task_id):
        self._p, self._id = progress, task_id

    def advance(self, n: int = 1) -> None:
        if self._p is not None:
            self._p.advance(self._id, n)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[_Task]:
    if is_quiet():
        yield _Task(None, None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(file=sys.stderr)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=not console.is_terminal) as progress:
        yield _Task(progress, progress.add_task(description, total=total))
