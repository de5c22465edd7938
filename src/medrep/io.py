"""Atomic, checksummed file writes and content hashing.

A file is written to a temporary sibling and renamed into place, so a killed process never leaves a
partially written file under the final name; readers verify the checksum recorded beside the data.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from medrep.errors import MedrepError


def digest_bytes(*chunks: bytes) -> str:
    h = hashlib.blake2b(digest_size=20)
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def digest_json(obj: Any) -> str:
    return digest_bytes(json.dumps(obj, sort_keys=True, default=str).encode())


def digest_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write(path: str | os.PathLike, writer: Callable[[str], None]) -> Path:
    """Call ``writer(tmp_path)`` then rename the result to ``path`` (same directory, so the rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        # mkstemp creates 0600; outputs (reports, tables) are meant to be shared, so honour the umask
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    def _w(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, _w)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Strict JSON: NaN and ±inf are written as null (JavaScript, jq and strict parsers reject ``NaN``);
    ``allow_nan=False`` makes a non-finite value that slipped past the conversion an error, not a bad file."""
    text = json.dumps(finite_json(obj), indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    return write_bytes_atomic(path, (text + "\n").encode())


def finite_json(o: Any) -> Any:
    """``o`` with NaN and ±inf (Python floats and 0-d numpy floats) replaced by None, tuples as lists."""
    if isinstance(o, float) or (hasattr(o, "dtype") and getattr(o, "ndim", None) == 0 and o.dtype.kind == "f"):
        return float(o) if math.isfinite(float(o)) else None
    if isinstance(o, dict):
        return {k: finite_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite_json(v) for v in o]
    return o


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return finite_json(o.item())
    if isinstance(o, np.ndarray):
        return finite_json(o.tolist())
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return finite_json(o.to_dict())
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_array_checked(path: str | os.PathLike, array: np.ndarray) -> str:
    """Write ``array`` as .npy atomically; return its content digest (to be recorded by the caller)."""
    array = np.ascontiguousarray(array)

    def _w(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)

    atomic_write(path, _w)
    return digest_bytes(array.tobytes())


def load_array_checked(path: str | os.PathLike, expected_digest: str | None) -> np.ndarray:
    """Load an .npy written by :func:`save_array_checked`; a digest mismatch or damaged file raises."""
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as err:  # truncated header, flipped magic, …
        raise MedrepError(f"damaged array file ({err.__class__.__name__}: {err})", where=str(path)) from err
    if expected_digest is not None and digest_bytes(np.ascontiguousarray(array).tobytes()) != expected_digest:
        raise MedrepError("checksum mismatch: file is corrupted", where=str(path))
    return array


def safe_output_path(out_dir: str | os.PathLike, name: str) -> Path:
    """Join ``name`` under ``out_dir`` and refuse anything that would land outside it."""
    root = Path(out_dir).resolve()
    target = (root / name).resolve()
    if root != target and root not in target.parents:
        raise MedrepError(f"output path escapes the output directory {root}", where=name)
    return target


def slug(name: str, width: int = 60) -> str:
    """A file-name-safe form of ``name`` that never gives two names the same file: a name that is already safe
    (letters, digits, ``-_.``, at most ``width`` characters) stays as it is; any other gets a short digest of
    the original appended, so "a/b" and "a_b" stay apart."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "_"
    if safe == name and len(safe) <= width:
        return safe
    return f"{safe[:width - 9]}-{hashlib.blake2b(name.encode(), digest_size=4).hexdigest()}"
