"""Embeddings, shared by every analysis: extraction from an Encoder over a Dataset (batched, resumable by
chunk, streamed) and the content-addressed embedding cache (weights, preprocessing, layer, pool, dtype, data)."""
from medrep.embeddings.cache import EmbeddingCache
from medrep.embeddings.extract import Embeddings, extract_embeddings

__all__ = ["EmbeddingCache", "Embeddings", "extract_embeddings"]
