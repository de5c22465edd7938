"""Atomic, checksummed file writes and content hashing.

A file is written to a temporary sibling and renamed into place, so a killed process never leaves a
partially written file under the final name; readers verify the checksum recorded beside the data.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

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
_ACTIVE_TEMPORARIES: set[str] = set()  # names of the temporaries this process is writing right now
_HOST = hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()
_FOREIGN_TEMPORARY_AGE_S = 24 * 3600


def atomic_write(path: str | os.PathLike, writer: Callable[[str], None]) -> Path:
    """Call ``writer(tmp_path)`` then rename the result to ``path`` (same directory, so the rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid in the name lets a later run tell a killed writer's leftover from a live one
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_writer_tag()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    _ACTIVE_TEMPORARIES.add(os.path.basename(tmp))
    try:
        writer(tmp)
        # mkstemp creates 0600; outputs (reports, tables) are meant to be shared, so honour the umask
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        _ACTIVE_TEMPORARIES.discard(os.path.basename(tmp))
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


# A cell a spreadsheet reads as a formula (=, +, -, @, or a tab / carriage return before one); OWASP's list
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """``value`` as a CSV cell that no spreadsheet runs: text starting like a formula (a label such as
    ``=HYPERLINK("http://x")``) gets a leading apostrophe; numbers, and text that is a number (``-0.5``), stay."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def write_csv_atomic(path: str | os.PathLike, header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> Path:
    """The one CSV writer of medrep: UTF-8, written atomically, every cell (the header's too) through
    :func:`csv_safe`, None as an empty cell."""
    import csv

    def _w(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow([csv_safe(c) for c in header])
            writer.writerows([csv_safe(c) for c in row] for row in rows)

    return atomic_write(path, _w)


class _HashingWriter:
    """A write-only file wrapper that digests every byte on its way to disk."""

    def __init__(self, f: Any):
        self.f = f
        self.hash = hashlib.blake2b(digest_size=20)

    def write(self, data: Any) -> int:
        data = memoryview(data).cast("B")
        self.hash.update(data)
        return self.f.write(data)


def save_array_checked(path: str | os.PathLike, array: np.ndarray) -> str:
    """Write ``array`` as .npy atomically; return the digest of the file's bytes as written (to be recorded
    by the caller).  The digest covers the .npy header too, so a damaged dtype, byte order or shape is
    caught, not read back as other numbers."""
    array = np.ascontiguousarray(array)
    digest: list[str] = []

    def _w(tmp: str) -> None:
        with open(tmp, "wb") as f:
            sink = _HashingWriter(f)  # not a real file object: np.save writes through sink.write in chunks
            np.save(sink, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
            digest.append(sink.hash.hexdigest())

    atomic_write(path, _w)
    return digest[0]


def load_array_checked(path: str | os.PathLike, expected_digest: str | None) -> np.ndarray:
    """Load an .npy written by :func:`save_array_checked`; a damaged file or one whose bytes (header
    included) do not match ``expected_digest`` raises."""
    try:
        if expected_digest is not None and digest_file(path) != expected_digest:
            raise MedrepError("checksum mismatch: file is corrupted", where=str(path))
        return np.load(path, allow_pickle=False)
    except MedrepError:
        raise
    except Exception as err:  # truncated header, flipped magic, unreadable file, …
        raise MedrepError(f"damaged array file ({err.__class__.__name__}: {err})", where=str(path)) from err


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (``.NAME.*.tmp``) that a killed :func:`atomic_write` left in ``folder``;
    returns what was removed.  A temporary whose writer is still alive is kept (its pid and host are in the name)."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp") if Path(folder).is_dir() else []:
        if _writer_alive(tmp):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass  # gone already (another process cleaned it) or not ours to remove
    return removed


def _younger_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


def _writer_tag() -> str:
    return f"pid{os.getpid()}-{_HOST}"


def _writer_alive(path: Path) -> bool:
    """Whether the process that writes this temporary (``.NAME.pidN-HOST.RANDOM.tmp``) may still be writing it."""
    parts = path.name.split(".")
    pid, _, host = (parts[-3] if len(parts) >= 4 else "").removeprefix("pid").partition("-")
    if not pid.isdigit():
        return False  # not written by atomic_write
    if host != _HOST:  # a shared cache written from another machine: only an old leftover is surely dead
        return _younger_than(path, _FOREIGN_TEMPORARY_AGE_S)
    if int(pid) == os.getpid():
        return path.name in _ACTIVE_TEMPORARIES
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return _younger_than(path, _FOREIGN_TEMPORARY_AGE_S)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # a process of another user holds that pid: leave its file alone
    return True


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
