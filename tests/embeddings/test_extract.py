"""Cached extraction: hits, invalidation, damage detection, resumption, parquet output."""
from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from medrep.data.base import TensorDataset
from medrep.errors import BadInputError
from medrep.features import EmbeddingCache, Embeddings, extract_embeddings


@pytest.fixture()
def cache(tmp_path):
    return EmbeddingCache(tmp_path / "cache")


@pytest.fixture()
def data():
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(50, 1, 32, 32, generator=g), np.arange(50) % 3, ["a", "b", "c"], name="rand")


class CountingEncoder:
    """Counts embed calls on a real encoder without changing it."""

    def __init__(self, enc):
        self.enc, self.calls = enc, 0
        self._orig = enc.embed

        def counted(*a, **k):
            self.calls += 1
            return self._orig(*a, **k)

        enc.embed = counted


def test_second_run_is_served_from_cache_and_equals_direct_embedding(tiny_vit, data, cache):
    first = extract_embeddings(tiny_vit, data, batch_size=16, cache=cache, chunk_size=20)
    counter = CountingEncoder(tiny_vit)
    second = extract_embeddings(tiny_vit, data, batch_size=16, cache=cache, chunk_size=20)
    assert counter.calls == 0 and second.meta["from_cache"]
    np.testing.assert_array_equal(first.vectors, second.vectors)
    with torch.no_grad():
        direct = tiny_vit.embed(data.images[:7]).numpy()
    np.testing.assert_allclose(first.vectors[:7], direct, atol=1e-5)


def test_changed_preprocessing_or_weights_never_reuse_stale_features(tiny_vit, data, cache):
    base = extract_embeddings(tiny_vit, data, cache=cache)
    tiny_vit.preprocessing = replace(tiny_vit.preprocessing, std=(0.3, 0.3, 0.3))
    changed = extract_embeddings(tiny_vit, data, cache=cache)
    assert changed.key != base.key and not changed.meta["from_cache"]
    assert not np.allclose(changed.vectors, base.vectors)
    with torch.no_grad():
        tiny_vit.module.norm.weight.mul_(2.0)
    tiny_vit._weights_digest = None
    reweighted = extract_embeddings(tiny_vit, data, cache=cache)
    assert reweighted.key not in (base.key, changed.key)
    np.testing.assert_allclose(reweighted.vectors, 2 * changed.vectors - tiny_vit.module.norm.bias.numpy(), atol=1e-4)


def test_layer_pool_and_data_are_part_of_the_key(tiny_vit, data, cache):
    keys = {extract_embeddings(tiny_vit, data, cache=cache).key,
            extract_embeddings(tiny_vit, data, pool="mean", cache=cache).key,
            extract_embeddings(tiny_vit, data, layer="blocks.0", cache=cache).key,
            extract_embeddings(tiny_vit, data.subset(range(10)), cache=cache).key}
    assert len(keys) == 4


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_cache_entry_is_detected_and_recomputed(tiny_vit, data, cache, damage):
    clean = extract_embeddings(tiny_vit, data, cache=cache, chunk_size=20)
    chunk = cache.entry(clean.key).chunk_path(1)
    raw = bytearray(chunk.read_bytes())
    if damage == "truncate":
        chunk.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        raw[-5] ^= 0xFF
        chunk.write_bytes(bytes(raw))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = extract_embeddings(tiny_vit, data, cache=cache, chunk_size=20)
    assert not again.meta["from_cache"]
    assert any("damaged" in str(w.message) for w in caught)
    np.testing.assert_allclose(again.vectors, clean.vectors, atol=1e-6)


class FailingDataset(TensorDataset):
    """Raises a bad-input error at one index, as an unreadable file would."""

    fail_at: int | None = None

    def _load(self, index):
        if index == self.fail_at:
            raise BadInputError("unreadable image", where=self._ids[index])
        return super()._load(index)


def test_work_before_a_bad_item_is_kept_and_reused(tiny_vit, cache):
    images = torch.rand(60, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    ds = FailingDataset(images, np.arange(60) % 2, ["x", "y"], name="fail")
    ds.fail_at = 45
    with pytest.raises(BadInputError, match="fail-000045"):
        extract_embeddings(tiny_vit, ds, cache=cache, chunk_size=20, batch_size=10)
    ds.fail_at = None
    counter = CountingEncoder(tiny_vit)
    full = extract_embeddings(tiny_vit, ds, cache=cache, chunk_size=20, batch_size=10)
    assert counter.calls == 2  # only the last chunk (20 items, batch 10) was recomputed
    assert full.vectors.shape == (60, 192)


def test_skip_bad_lists_the_skipped_item(tiny_vit, cache):
    from medrep.data.base import SkipLog

    ds = FailingDataset(torch.rand(12, 1, 32, 32), np.arange(12) % 2, ["x", "y"], name="fail")
    ds.fail_at = 3
    log = SkipLog()
    out = extract_embeddings(tiny_vit, ds, cache=cache, skipped=log)
    assert len(out) == 11 and "fail-000003" not in out.ids
    assert log.skipped == [{"item": "fail-000003", "problem": "fail-000003: unreadable image"}]


def test_parquet_has_fixed_size_float32_embeddings(tiny_vit, data, cache, tmp_path):
    import pyarrow.parquet as pq
    import pyarrow as pa

    emb = extract_embeddings(tiny_vit, data, cache=cache)
    path = emb.to_parquet(tmp_path / "e.parquet")
    table = pq.read_table(path)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 192)
    back = Embeddings.from_parquet(path)
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    assert back.ids == emb.ids and (back.labels == emb.labels).all()


def test_nan_embeddings_are_refused():
    emb = Embeddings(["a", "b"], np.array([0, 1]), np.array([[0.0, 1.0], [np.nan, 1.0]], dtype=np.float32))
    with pytest.raises(BadInputError, match="1 embeddings contain NaN"):
        emb.check_finite()
