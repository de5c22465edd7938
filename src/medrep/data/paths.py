"""File names and paths: which files are images or DICOM, printable names, the cheap checks done at load time.
A leaf module (no other part of ``medrep.data``), so that every reader and source can use it."""
from __future__ import annotations

import os
from pathlib import Path

from medrep.errors import BadInputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic"})
MASK_SUFFIXES = (".png", ".npy", ".tif", ".tiff", ".bmp", ".gif")


def as_path(path) -> Path:
    """A Path from str / bytes / PathLike; bytes keep undecodable names via surrogateescape."""
    return Path(os.fsdecode(path)) if isinstance(path, bytes) else Path(path)


def show_path(path) -> str:
    """A printable name for messages and ids: non-UTF-8 bytes appear as ``\\xff`` instead of crashing the print."""
    text = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_dicom_file(path) -> bool:
    """By suffix, or by the ``DICM`` magic at byte 128 (DICOM files often have no suffix)."""
    p = as_path(path)
    if p.suffix.lower() in DICOM_SUFFIXES:
        return True
    if p.suffix.lower() in IMAGE_SUFFIXES or p.suffix.lower() in (".npy", ".npz", ".csv", ".txt", ".json"):
        return False
    try:
        with open(p, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def is_image_file(path) -> bool:
    p = as_path(path)
    return not p.name.startswith(".") and (p.suffix.lower() in IMAGE_SUFFIXES or is_dicom_file(p))


def check_readable(path) -> Path:
    """Existence, kind and non-emptiness: the cheap checks done for every file at dataset load time."""
    p = as_path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise BadInputError("no such file", where=show_path(p)) from None
    except OSError as err:
        raise BadInputError(f"cannot access file ({err.strerror})", where=show_path(p)) from None
    if not p.is_file():
        raise BadInputError("is not a regular file", where=show_path(p))
    if st.st_size == 0:
        raise BadInputError("file is empty (0 bytes)", where=show_path(p))
    return p
