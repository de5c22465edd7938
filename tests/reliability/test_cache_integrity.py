"""A damaged embedding-cache file is detected, reported with its path, recomputed, and the result equals
the original.  tests/embeddings/test_extract.py covers the library call; this is the
`medrep extract` path, every file of an entry, and random damage."""
from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medrep.features import Embeddings
from medrep.features.cache import EmbeddingCache


def extract_args(cli, out, cache):
    return ["extract", "--model", cli.TINY, "--data", cli.DATA, "--split", "test", "--batch-size", "4",
            "--chunk-size", "5", "--out", str(out), "--cache-dir", str(cache), "--quiet"]


@pytest.fixture(scope="module")
def reference(cli, tmp_path_factory):
    root = tmp_path_factory.mktemp("cache-ref")
    assert cli.in_process(extract_args(cli, root / "out", root / "cache")) == 0
    [entry] = [p for p in (root / "cache").glob("*/*") if p.is_dir()]
    return Embeddings.from_parquet(root / "out" / "embeddings.parquet"), root / "cache", entry.relative_to(root / "cache")


def _flip(path, offset, mask=0xFF):
    raw = bytearray(path.read_bytes())
    raw[offset] ^= mask
    path.write_bytes(bytes(raw))


DAMAGE = {
    "truncated chunk": ("chunk-000001.npy", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])),
    "flipped chunk data": ("chunk-000002.npy", lambda p: _flip(p, -5)),
    "flipped chunk header": ("chunk-000003.npy", lambda p: _flip(p, 12, 0x01)),  # a key of the .npy header dict
    "garbage chunk record": ("chunk-000000.json", lambda p: p.write_bytes(b"\x00\xff{not json")),
    "truncated completion record": ("complete.json", lambda p: p.write_bytes(p.read_bytes()[:7])),
    "deleted chunk array": ("chunk-000001.npy", lambda p: p.unlink()),
    "deleted chunk record": ("chunk-000002.json", lambda p: p.unlink()),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_file_is_named_recomputed_and_healed(cli, reference, tmp_path, case):
    ref, ref_cache, entry = reference
    cache = tmp_path / "cache"
    shutil.copytree(ref_cache, cache)
    name, damage = DAMAGE[case]
    victim = cache / entry / name
    damage(victim)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.in_process(extract_args(cli, tmp_path / "out", cache)) == 0
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any(str(victim) in m for m in messages), messages  # the warning names the damaged file
    got = Embeddings.from_parquet(tmp_path / "out" / "embeddings.parquet")
    assert got.ids == ref.ids
    np.testing.assert_array_equal(got.vectors, ref.vectors)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["output"]["from_cache"] is False

    # the entry was repaired: the next run is served from the cache, silently
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.in_process(extract_args(cli, tmp_path / "again", cache)) == 0
    assert not [w for w in caught if "cache" in str(w.message)]
    assert json.loads((tmp_path / "again" / "manifest.json").read_text())["output"]["from_cache"] is True
    np.testing.assert_array_equal(Embeddings.from_parquet(tmp_path / "again" / "embeddings.parquet").vectors, ref.vectors)


# -- any damage to a chunk file: either detected (warning naming it) or harmless, never wrong numbers --
_ARRAY = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)
_IDS = [f"item-{i}" for i in range(5)]


def _fresh_entry(tmp_path_factory):
    entry = EmbeddingCache(tmp_path_factory.mktemp("entry")).entry("ab" + "0" * 38)
    entry.write_chunk(0, _ARRAY, _IDS)
    return entry


def _read_back(entry, target):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = entry.read_chunk(0, _IDS)
    if got is None:
        assert any(str(target) in str(w.message) for w in caught), [str(w.message) for w in caught]
        assert not target.exists()  # the damaged chunk is removed, so it is recomputed
    else:
        np.testing.assert_array_equal(got, _ARRAY)


@settings(max_examples=40, deadline=None)
@given(which=st.sampled_from(["npy", "json"]), where=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_any_flipped_byte_is_caught_or_harmless(tmp_path_factory, which, where, mask):
    entry = _fresh_entry(tmp_path_factory)
    target = entry.chunk_path(0) if which == "npy" else entry.chunk_path(0).with_suffix(".json")
    _flip(target, int(where * target.stat().st_size), mask)
    _read_back(entry, target)


@settings(max_examples=30, deadline=None)
@given(which=st.sampled_from(["npy", "json"]), keep=st.floats(0, 1, exclude_max=True))
def test_any_truncation_is_caught(tmp_path_factory, which, keep):
    entry = _fresh_entry(tmp_path_factory)
    target = entry.chunk_path(0) if which == "npy" else entry.chunk_path(0).with_suffix(".json")
    target.write_bytes(target.read_bytes()[: int(keep * target.stat().st_size)])
    _read_back(entry, target)
