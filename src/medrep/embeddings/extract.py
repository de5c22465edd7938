"""Batched, cached embedding extraction: what every analysis reads its features from."""
from __future__ import annotations

from dataclasses import dataclass, field
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from medrep.data.base import ImageDataset, SkipLog, collate
from medrep.errors import BadInputError, MedrepError, Param
from medrep.embeddings.cache import EmbeddingCache, cache_key
from medrep.geometry import fit_to_size
from medrep.models.base import Encoder
from medrep.progress import progress_bar

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Embeddings:
    ids: list[str]
    labels: np.ndarray
    vectors: np.ndarray  # (N, D) float32 (or (N, T, D) for pool="patches")
    key: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def check_finite(self) -> "Embeddings":
        bad = ~np.isfinite(self.vectors.reshape(len(self.ids), -1)).all(axis=1)
        if bad.any():
            first = [self.ids[i] for i in np.flatnonzero(bad)[:3]]
            raise BadInputError(f"{int(bad.sum())} embeddings contain NaN or infinite values (first: {', '.join(first)})",
                                where=self.meta.get("encoder", "embeddings"))
        return self

    def to_parquet(self, path: str | Path) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from medrep.io import atomic_write

        flat = np.ascontiguousarray(self.vectors.reshape(len(self.ids), -1), dtype=np.float32)
        dim = flat.shape[1]
        emb = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), type=pa.float32()), dim)
        table = pa.table({"id": pa.array(self.ids, pa.string()), "label": pa.array(self.labels.astype(np.int64)), "embedding": emb})
        return atomic_write(path, lambda tmp: pq.write_table(table, tmp))

    @classmethod
    def from_parquet(cls, path: str | Path) -> "Embeddings":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as err:
            raise MedrepError(f"not a readable embeddings file ({err})", where=str(path)) from err
        missing = {"id", "label", "embedding"} - set(table.column_names)
        if missing:
            raise MedrepError(f"missing column(s) {', '.join(sorted(missing))}", where=str(path))
        col = table.column("embedding").combine_chunks()
        vectors = col.flatten().to_numpy(zero_copy_only=False).reshape(len(table), -1).astype(np.float32)
        return cls(table.column("id").to_pylist(), table.column("label").to_numpy(), vectors)


class _TorchView(Dataset):
    """Items of one chunk for a DataLoader; resized to the model's size so mixed-size datasets batch."""

    def __init__(self, dataset: ImageDataset, indices: list[int], fit: dict[str, Any], skip_bad: bool):
        self.dataset, self.indices, self.fit, self.skip_bad = dataset, indices, fit, skip_bad

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        try:
            item = self.dataset[self.indices[i]]
        except BadInputError as err:
            if not self.skip_bad:
                raise
            return ("bad", self.dataset.item_id(self.indices[i]) if hasattr(self.dataset, "item_id") else str(i), str(err))
        if tuple(item.image.shape[-2:]) != tuple(self.fit["size"]):
            item.image = fit_to_size(item.image[None], **self.fit)[0]
            item.mask = None
        return item


def _collate_keep_bad(items):
    good = [it for it in items if not isinstance(it, tuple)]
    bad = [it for it in items if isinstance(it, tuple)]
    return (collate(good) if good else None), bad


@dataclass
class ExtractJob:
    """One embedding chunk per unit: what the backends run (picklable; the encoder comes from the worker)."""

    layer: str | None
    pool: str | None  # None: the model's own representation
    dtype: str
    batch_size: int
    chunk_size: int
    n: int
    num_workers: int = 0
    skip_bad: bool = False
    compile: bool = False  # torch.compile the embedding call (built once per encoder, in whichever process runs it)

    def rows(self, chunk: int) -> range:
        """The dataset indices of one chunk."""
        return range(chunk * self.chunk_size, min(self.n, (chunk + 1) * self.chunk_size))

    def unit_size(self, chunk: int) -> int:
        return len(self.rows(chunk))

    def run(self, encoder: Encoder, dataset: ImageDataset, chunk: int, progress: Any = None
            ) -> tuple[np.ndarray | None, list[str], np.ndarray, list[tuple[str, str]]]:
        """(embeddings, ids, labels, [(item, problem) left out]) of one chunk, batch by batch."""
        idx = list(self.rows(chunk))
        view = _TorchView(dataset, idx, encoder.preprocessing.fit_kwargs(), self.skip_bad)
        loader = DataLoader(view, batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=_collate_keep_bad,
                            persistent_workers=False, prefetch_factor=2 if self.num_workers else None)
        torch_dtype = _DTYPES[self.dtype]
        device = encoder.device
        embed = compiled_embed(encoder) if self.compile else encoder.embed
        out, c_ids, c_labels, bad_items = [], [], [], []
        with torch.inference_mode():
            for batch, bad in loader:
                bad_items += [(where, why) for _, where, why in bad]
                if batch is not None:
                    x = batch["image"].to(device)
                    with torch.autocast(device.type, dtype=torch_dtype, enabled=torch_dtype != torch.float32):
                        emb = embed(x, layer=self.layer, pool=self.pool)
                    out.append(emb.float().cpu().numpy())
                    c_ids += batch["id"]
                    c_labels.append(batch["label"].numpy())
                if progress is not None:
                    progress.advance(len(bad) + (len(batch["id"]) if batch is not None else 0))
        if not out:
            return None, [], np.zeros(0, np.int64), bad_items
        return np.concatenate(out).astype(np.float32, copy=False), c_ids, np.concatenate(c_labels), bad_items


_COMPILED: "weakref.WeakKeyDictionary[Encoder, Any]" = weakref.WeakKeyDictionary()


def check_compile_available(where: str = "--compile") -> None:
    """Refuse ``torch.compile`` in one line where its CPU backend cannot build kernels (no C++ compiler)."""
    import os
    import shutil

    if not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c):
        raise MedrepError("torch.compile needs a C++ compiler on the PATH (g++ / clang++, or $CXX) to build its CPU "
                          "kernels, and none was found; leave the option out", where=where)


def compiled_embed(encoder: Encoder) -> Any:
    """``encoder.embed`` through ``torch.compile``, built once per encoder (the first batches pay the compile)."""
    if encoder not in _COMPILED:
        _COMPILED[encoder] = torch.compile(encoder.embed)
    return _COMPILED[encoder]


def extract_embeddings(
    encoder: Encoder,
    dataset: ImageDataset,
    layer: str | None = None,
    pool: str | None = None,
    batch_size: int = 64,
    cache: EmbeddingCache | None = None,
    chunk_size: int = 1024,
    num_workers: int | None = None,
    dtype: str = "float32",
    skipped: SkipLog | None = None,
    description: str | None = None,
    backend: Any = None,
) -> Embeddings:
    """Embed every item of ``dataset`` (inference mode, batched), served from / written to ``cache``.

    Given a ``skipped`` log (``--skip-bad``), unreadable items are left out and listed in it; without one the
    first bad item raises, and every chunk finished before it stays in the cache.  ``backend`` (default: the
    current one, see :mod:`medrep.backends`) computes the missing chunks; the Ray backend shards them
    over its workers, and every finished chunk lands in the cache as it arrives, whichever computed it.
    ``encoder.compile_extraction = True`` (``--compile``) runs the embedding call through ``torch.compile``:
    the same embeddings within float tolerance (tested), so the cache key does not change.
    """
    from medrep.backends import resolve_backend
    from medrep.backends.units import run_units

    skip_bad = skipped is not None
    if batch_size < 1:
        raise MedrepError("must be at least 1", where=Param("batch_size"))
    if dtype not in _DTYPES:
        raise MedrepError(f"unknown dtype {dtype!r} (choose from {', '.join(_DTYPES)})", where=Param("dtype"))
    backend = resolve_backend(backend)
    # The cache and the results name what was computed: an explicit pooling, or the model's own
    # representation ("model" where that is not a plain pooling of its default layer, e.g. a CLIP projection).
    asked_pool = pool
    pool = pool or (encoder.default_pool if encoder.default_is_plain_pool or layer is not None else "model")
    cache = cache if cache is not None else EmbeddingCache()
    n = len(dataset)
    ids = dataset.ids
    labels = np.asarray(dataset.labels, dtype=np.int64)
    key = cache_key(encoder.fingerprint, layer, pool, dtype, dataset.content_digest())
    entry = cache.entry(key)
    meta = {"encoder": encoder.name, "layer": layer, "pool": pool, "dtype": dtype, "cache_key": key}
    use_cache = cache.enabled and not skip_bad
    if use_cache:
        hit = entry.load_complete(ids)
        if hit is not None:
            return Embeddings(ids, labels, hit, key, {**meta, "from_cache": True})
    n_chunks = max(1, -(-n // chunk_size))
    if num_workers is None:
        num_workers = 0 if isinstance(getattr(dataset, "images", None), torch.Tensor) or hasattr(dataset, "parts") else 1
    if getattr(backend, "distributed", False):
        num_workers = 0  # a Ray worker is one process on one core: no DataLoader processes inside it
    skipped = skipped if skip_bad else SkipLog()
    job = ExtractJob(layer, asked_pool, dtype, batch_size, chunk_size, n, num_workers, skip_bad,
                     compile=bool(getattr(encoder, "compile_extraction", False)))

    def load(c: int) -> tuple[np.ndarray, list[str], np.ndarray, list] | None:
        chunk_ids = ids[c * chunk_size : (c + 1) * chunk_size]
        done = entry.read_chunk(c, chunk_ids) if use_cache else None
        return (done, chunk_ids, labels[c * chunk_size : (c + 1) * chunk_size], []) if done is not None else None

    def save(c: int, result: tuple[np.ndarray | None, list[str], np.ndarray, list[tuple[str, str]]]) -> None:
        array, c_ids = result[0], result[1]
        if array is not None and use_cache:
            entry.write_chunk(c, array, c_ids)  # lands as soon as it is computed: resumable

    with progress_bar(description or f"embedding with {encoder.name}", n) as bar:
        results = run_units(job, encoder, dataset, range(n_chunks), backend, load=load, save=save, progress=bar,
                            size=lambda c: len(ids[c * chunk_size : (c + 1) * chunk_size]))
    parts, kept_ids, kept_labels = [], [], []
    for c in range(n_chunks):  # chunk order, whatever order the backend finished them in
        array, c_ids, c_labels, bad = results[c]
        for where, why in bad:
            skipped.add(where, why)
        if array is not None:
            parts.append(array)
            kept_ids += c_ids
            kept_labels.append(c_labels)
    if not parts:
        raise MedrepError("no item could be embedded", where=dataset.name)
    vectors = np.concatenate(parts)
    if use_cache and np.isfinite(vectors).all():  # non-finite chunks were not cached: no complete entry
        entry.finalise(n_chunks, vectors.shape[0], {"chunk_size": chunk_size, **meta})
    return Embeddings(kept_ids, np.concatenate(kept_labels), vectors, key,
                      {**meta, "from_cache": False, "skipped": skipped.skipped, "backend": backend.name})
