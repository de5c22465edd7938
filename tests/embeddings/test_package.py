"""Extraction and the cache live in medrep.embeddings, shared by every analysis; the old import paths are the
same modules (so a patch or an isinstance check through either path means the same thing)."""
from __future__ import annotations

import medrep.embeddings.cache
import medrep.embeddings.extract
import medrep.features.cache
import medrep.features.extract
from medrep.embeddings import EmbeddingCache, Embeddings, extract_embeddings
from medrep.features import EmbeddingCache as OldCache


def test_the_old_paths_are_the_same_modules():
    assert medrep.features.extract is medrep.embeddings.extract
    assert medrep.features.cache is medrep.embeddings.cache
    assert OldCache is EmbeddingCache is medrep.features.cache.EmbeddingCache
    assert extract_embeddings.__module__ == "medrep.embeddings.extract" and Embeddings.__module__ == "medrep.embeddings.extract"
