"""The one content-addressed embedding cache every analysis reads.

Key = digest(encoder fingerprint [weights + preprocessing + adapter], layer, pool, dtype, data digest).
An entry is a directory of checksummed chunks plus ``complete.json`` (row count, chunk digests).
Chunks land atomically as they are computed, so an interrupted extraction resumes from the last
finished chunk; an entry whose files fail their checksums is reported, discarded and recomputed.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medrep.errors import MedrepError
from medrep.io import digest_json, load_array_checked, remove_stale_temporaries, save_array_checked, write_json_atomic


def default_cache_dir() -> Path:
    return Path(os.environ.get("MEDREP_CACHE", Path.home() / ".cache" / "medrep")) / "embeddings"


def cache_key(encoder_fingerprint: str, layer: str | None, pool: str, dtype: str, data_digest: str) -> str:
    return digest_json({"encoder": encoder_fingerprint, "layer": layer, "pool": pool, "dtype": dtype, "data": data_digest, "v": 2})


@dataclass
class CacheEntry:
    root: Path
    key: str

    def __post_init__(self) -> None:
        remove_stale_temporaries(self.path)  # what a killed writer left half-written

    @property
    def path(self) -> Path:
        return self.root / self.key[:2] / self.key

    def chunk_path(self, index: int) -> Path:
        return self.path / f"chunk-{index:06d}.npy"

    def _progress_path(self, index: int) -> Path:
        return self.path / f"chunk-{index:06d}.json"

    # -- chunks (resumable writes) --------------------------------------------------------------
    def write_chunk(self, index: int, array: np.ndarray, ids: list[str]) -> None:
        """Store a computed chunk.  Only finite embeddings are cached: the caller refuses the others, and a
        non-finite value read back from the cache then always means a damaged entry."""
        if not np.isfinite(array).all():
            return
        digest = save_array_checked(self.chunk_path(index), array)
        write_json_atomic(self._progress_path(index), {"digest": digest, "rows": int(array.shape[0]), "ids": ids})

    def read_chunk(self, index: int, expected_ids: list[str]) -> np.ndarray | None:
        """A finished chunk whose checksum and ids verify, else None (damaged chunks are removed)."""
        meta_path = self._progress_path(index)
        if not meta_path.exists() and not self.chunk_path(index).exists():
            return None  # not computed yet
        if not meta_path.exists() or not self.chunk_path(index).exists():
            present, missing = (meta_path, self.chunk_path(index)) if meta_path.exists() else (self.chunk_path(index), meta_path)
            warnings.warn(f"embedding cache: {missing} is missing beside {present}; the chunk will be recomputed", stacklevel=2)
            present.unlink(missing_ok=True)
            return None
        bad = meta_path  # the file named in the warning: the record until it parses, then the array
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict):
                raise ValueError("not a chunk record")
            bad = self.chunk_path(index)
            array = load_array_checked(bad, meta["digest"])
            if meta.get("ids") != expected_ids or array.shape[0] != meta["rows"]:
                raise ValueError("chunk does not hold the expected items")
            if array.dtype.kind != "f" or not np.isfinite(array).all():
                raise ValueError("it holds non-finite or non-float values (only finite embeddings are cached)")
            return array
        except (MedrepError, ValueError, KeyError, TypeError, OSError) as err:
            why = str(err).removeprefix(f"{err.where}: ") if isinstance(err, MedrepError) and err.where else str(err)
            named = str(bad) if bad == meta_path else f"{bad} (checked against its record {meta_path})"
            warnings.warn(f"embedding cache: discarding damaged chunk {named}: {why or type(err).__name__}; "
                          "it will be recomputed", stacklevel=2)
            for p in (meta_path, self.chunk_path(index)):
                p.unlink(missing_ok=True)
            return None

    # -- whole entries ---------------------------------------------------------------------------
    def finalise(self, n_chunks: int, n_rows: int, info: dict[str, Any]) -> None:
        write_json_atomic(self.path / "complete.json", {"chunks": n_chunks, "rows": n_rows, **info})

    def load_complete(self, expected_ids: list[str]) -> np.ndarray | None:
        marker = self.path / "complete.json"
        if not marker.exists():
            return None
        try:
            meta = json.loads(marker.read_text())
        except (ValueError, OSError):
            meta = None
        parts = []
        if not isinstance(meta, dict) or not all(isinstance(meta.get(k), int) and meta[k] > 0 for k in ("chunk_size", "chunks")) \
                or not isinstance(meta.get("rows"), int):
            self.discard(f"unreadable completion record {marker}")
            return None
        chunk_size = meta["chunk_size"]
        for i in range(meta["chunks"]):
            if not self._progress_path(i).exists() and not self.chunk_path(i).exists():
                warnings.warn(f"embedding cache: chunk {i} of the complete entry {self.path} was deleted; "
                              "it will be recomputed", stacklevel=2)
            chunk = self.read_chunk(i, expected_ids[i * chunk_size : (i + 1) * chunk_size])
            if chunk is None:
                marker.unlink(missing_ok=True)
                return None
            parts.append(chunk)
        array = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        if array.shape[0] != meta["rows"] or array.shape[0] != len(expected_ids):
            self.discard(f"row count {array.shape[0]} does not match the record {marker} ({meta['rows']})")
            return None
        return array

    def discard(self, why: str) -> None:
        warnings.warn(f"embedding cache entry {self.key[:12]}: {why}; recomputing", stacklevel=2)
        shutil.rmtree(self.path, ignore_errors=True)


class EmbeddingCache:
    def __init__(self, root: str | os.PathLike | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled

    def entry(self, key: str) -> CacheEntry:
        return CacheEntry(self.root, key)
