from __future__ import annotations

import pytest
import torch

TINY = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=3"


@pytest.fixture(scope="module")
def tiny_encoder():
    """Module-scoped tiny ViT with a head (seeded random weights), 32 px, 4×4 tokens."""
    from medrep.models import load_encoder

    torch.manual_seed(0)
    return load_encoder(TINY)


@pytest.fixture(scope="module")
def tiny_headless():
    from medrep.models import load_encoder

    torch.manual_seed(1)
    return load_encoder(TINY.replace("num_classes=3", "num_classes=0"))
