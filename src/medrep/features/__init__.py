"""Feature extraction, the embedding cache, distribution metrics and model similarity."""
from medrep.embeddings.cache import EmbeddingCache
from medrep.embeddings.extract import Embeddings, extract_embeddings

__all__ = ["EmbeddingCache", "Embeddings", "extract_embeddings"]
