"""Moved to :mod:`medrep.embeddings.cache` (embeddings are shared by every analysis); this name is the same module."""
import sys

from medrep.embeddings import cache as _moved

sys.modules[__name__] = _moved
