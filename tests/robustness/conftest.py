from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny_headless(make_tiny_vit):
    return make_tiny_vit(seed=1, num_classes=0)
