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
    if quiet:
        silence_third_party()


#: Libraries whose load chatter (progress bars, "initialized randomly", config notes) --quiet silences.
CHATTY = ("transformers", "huggingface_hub", "timm", "open_clip", "sentence_transformers", "torch")


def silence_third_party() -> None:
    """Third-party load chatter off: their loggers (open_clip logs on the root logger), warnings and progress
    bars.  medrep's own messages are prints and errors, which stay."""
    import logging
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is first imported
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.getLogger().setLevel(logging.ERROR)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=rf"{name}(\..*)?$")
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:  # already imported: its env variable was read before
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


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
