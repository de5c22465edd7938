"""One error type for everything a user can get wrong; the CLI prints it as a single line."""
from __future__ import annotations


class MedrepError(Exception):
    """A problem with the user's input (file, field, spec, parameter), not a bug in medrep.

    ``where`` names the file, field or option at fault so the one-line message is actionable.
    """

    def __init__(self, message: str, where: str | None = None):
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class BadInputError(MedrepError):
    """An input item (image, mask, DICOM, manifest row) that cannot be used; ``--skip-bad`` may skip it."""


class SpecError(MedrepError):
    """An unknown or malformed model / data spec string."""
