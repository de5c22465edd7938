"""One error type for everything a user can get wrong; the CLI prints it as a single line."""
from __future__ import annotations


class Param(str):
    """The library's name for a parameter at fault (``Param("eps")``); each front end says where the user
    wrote it: ``--eps`` on the command line, ``analyses.robustness.eps`` in an audit config.

    The name is the option's key (the audit-YAML key, the flag without dashes, hyphens as underscores).
    It is a ``str`` so code that reads ``err.where`` as text keeps working.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Param({str(self)!r})"

    @property
    def flag(self) -> str:
        """As a command-line flag: ``batch_size`` → ``--batch-size``; ``target/text`` → ``--target/--text``."""
        return "/".join("--" + part.replace("_", "-") for part in str(self).split("/"))


class MedrepError(Exception):
    """A problem with the user's input (file, field, spec, parameter), not a bug in medrep.

    ``where`` names the file, field or option at fault so the one-line message is actionable: a
    :class:`Param` for a parameter (the front end turns it into its flag or config path), else a path or
    a spec as text.  ``detail`` is the message without the place.
    """

    def __init__(self, message: str, where: str | None = None):
        worker_traceback = None
        if where is None and isinstance(message, str) and message.startswith("Caught ") and "\nOriginal Traceback" in message:
            # torch's DataLoader re-raises a worker's exception as ``type(err)(text of its whole traceback)``:
            # keep the one-line message (the traceback's last line) and the traceback as a note for --debug.
            prefix = f"\n{type(self).__module__}.{type(self).__qualname__}: "
            if prefix in message:
                worker_traceback, message = message, message.rsplit(prefix, 1)[1].strip()
        self.where, self.detail = where, message
        super().__init__(f"{where}: {message}" if where else message)
        if worker_traceback is not None:
            self.add_note(worker_traceback)

    def placed(self, place: str | None) -> "MedrepError":
        """The same error (same type), reported at ``place`` instead of its parameter name."""
        err = type(self).__new__(type(self))
        Exception.__init__(err, f"{place}: {self.detail}" if place else self.detail)
        err.where, err.detail = place, self.detail
        err.__notes__ = list(getattr(self, "__notes__", []))
        return err


def cli_place(where: str | None) -> str | None:
    """Where the command line says an error is: a parameter as its flag, anything else as it is."""
    return where.flag if isinstance(where, Param) else where


class BadInputError(MedrepError):
    """An input item (image, mask, DICOM, manifest row) that cannot be used; ``--skip-bad`` may skip it."""


class SpecError(MedrepError):
    """An unknown or malformed model / data spec string."""
