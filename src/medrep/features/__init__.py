"""Feature extraction, the embedding cache, distribution metrics and model similarity."""
from medrep.features.cache import EmbeddingCache
from medrep.features.extract import Embeddings, extract_embeddings

__all__ = ["EmbeddingCache", "Embeddings", "extract_embeddings"]
