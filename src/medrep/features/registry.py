"""The registry of 2-D projections and its decorator; the built-ins (t-SNE, UMAP) live in
:mod:`medrep.features.projection` and are registered on the first look-up.

A projection is ``fn(x, seed, perplexity=, n_neighbors=) -> (M, 2)`` on L2-normalised rows (M ≥ 5).  Its
metadata: ``title`` (the figure's caption) and ``default`` (drawn when no projection is named).
"""
from __future__ import annotations

from typing import Any

from medrep.registry import Registry

#: name → projection function
PROJECTIONS = Registry("projection", param="projection", builtins=("medrep.features.projection",))


def register_projection(name: str, *, help: str = "", title: str | None = None, default: bool = False, **meta: Any):
    """Decorator: ``@register_projection("pca", title="PCA")`` on ``fn(x, seed, **kw) -> (M, 2)``."""
    return PROJECTIONS.register(name, help=help, title=title or name, default=default, **meta)
