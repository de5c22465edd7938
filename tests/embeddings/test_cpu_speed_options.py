"""Extraction speed options: torch.compile and bfloat16 autocast give the float32 eager embeddings back."""
from __future__ import annotations

import numpy as np
import pytest

from medrep.data.base import Subset
from medrep.errors import MedrepError
from medrep.embeddings import EmbeddingCache, extract_embeddings
from medrep.models import load_encoder


@pytest.fixture(scope="module")
def phantoms(small_phantoms):
    test = small_phantoms.split("test")
    return Subset(test, list(range(12)))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@pytest.mark.slow
def test_compiled_extraction_equals_eager_within_float_tolerance(phantoms):
    enc = load_encoder("demo-cnn")
    eager = extract_embeddings(enc, phantoms, batch_size=5, cache=EmbeddingCache(enabled=False)).vectors
    enc.compile_extraction = True
    compiled = extract_embeddings(enc, phantoms, batch_size=5, cache=EmbeddingCache(enabled=False))
    assert compiled.vectors.shape == eager.shape
    # batch 5 over 12 items: the shorter last batch goes through the compiled call too
    np.testing.assert_allclose(compiled.vectors, eager, rtol=1e-4, atol=1e-5)
    assert not np.array_equal(eager, np.zeros_like(eager))


@pytest.mark.parametrize("spec", ["demo-cnn", "demo-vit"])
def test_bfloat16_autocast_extraction_keeps_cosine_to_float32_above_0_99(phantoms, spec):
    enc = load_encoder(spec)
    f32 = extract_embeddings(enc, phantoms, batch_size=6, cache=EmbeddingCache(enabled=False)).vectors
    bf16 = extract_embeddings(enc, phantoms, batch_size=6, dtype="bfloat16", cache=EmbeddingCache(enabled=False)).vectors
    cos = _cosines(f32, bf16)
    assert cos.min() >= 0.99
    # bf16 really ran: its embeddings are not bit-identical to float32 ones
    assert not np.array_equal(f32, bf16)


def test_compile_is_refused_in_one_line_without_a_cxx_compiler(monkeypatch):
    import shutil

    from medrep.embeddings.extract import check_compile_available

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MedrepError, match="C\\+\\+ compiler") as err:
        check_compile_available("--compile")
    assert err.value.where == "--compile" and "\n" not in str(err.value)
