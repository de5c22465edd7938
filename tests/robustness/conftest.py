from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny_encoder(make_tiny_vit):
    """Module-scoped tiny ViT with a head (the root conftest's), 32 px, 4×4 tokens."""
    return make_tiny_vit()


@pytest.fixture(scope="module")
def tiny_headless(make_tiny_vit):
    return make_tiny_vit(seed=1, num_classes=0)
