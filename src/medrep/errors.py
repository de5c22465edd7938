"""One error type for everything a user can get wrong; the CLI prints it as a single line."""
from __future__ import annotations


class MedrepError(Exception):
    """A problem with the user's input (file, field, spec, parameter), not a bug in medrep.

    ``where`` names the file, field or option at fault so the one-line message is actionable.
    """

    def __init__(self, message: str, where: str | None = None):
        worker_traceback = None
        if where is None and isinstance(message, str) and message.startswith("Caught ") and "\nOriginal Traceback" in message:
            # torch's DataLoader re-raises a worker's exception as ``type(err)(text of its whole traceback)``:
            # keep the one-line message (the traceback's last line) and the traceback as a note for --debug.
            prefix = f"\n{type(self).__module__}.{type(self).__qualname__}: "
            if prefix in message:
                worker_traceback, message = message, message.rsplit(prefix, 1)[1].strip()
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
        if worker_traceback is not None:
            self.add_note(worker_traceback)


class BadInputError(MedrepError):
    """An input item (image, mask, DICOM, manifest row) that cannot be used; ``--skip-bad`` may skip it."""


class SpecError(MedrepError):
    """An unknown or malformed model / data spec string."""
