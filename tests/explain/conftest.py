"""Tiny models for the explanation tests: built from configs with seeded random weights (no downloads)."""
from __future__ import annotations

import pytest
import torch

VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)


@pytest.fixture()
def x32():
    torch.manual_seed(11)
    return torch.rand(4, 3, 32, 32)


@pytest.fixture(scope="module")
def vit_reg_rect():
    """timm ViT with 2 register tokens and a non-square 3×5 grid (24×40 px, 8 px patches)."""
    import timm

    from medrep.models.base import Preprocessing
    from medrep.models.timm_adapter import TimmEncoder

    torch.manual_seed(1)
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=(24, 40), patch_size=8, depth=2,
                          num_classes=3, reg_tokens=2, embed_dim=48, num_heads=3)
    return TimmEncoder(m, Preprocessing((24, 40), (0.5,) * 3, (0.25,) * 3, 3), name="vit-reg-rect")


@pytest.fixture(scope="module")
def hf_vit():
    from transformers import ViTConfig, ViTForImageClassification

    from medrep.models.hf_adapter import HFEncoder
    from medrep.models.base import Preprocessing

    torch.manual_seed(2)
    m = ViTForImageClassification(ViTConfig(**VISION, num_labels=3, attn_implementation="sdpa")).eval()
    return HFEncoder(m, Preprocessing((32, 32), (0.5,) * 3, (0.5,) * 3, 3), name="hf-vit")


@pytest.fixture(scope="module")
def open_clip_tiny():
    import open_clip

    from medrep.models.base import Preprocessing
    from medrep.models.open_clip_adapter import OpenClipEncoder

    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
           "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 2}}
    torch.manual_seed(3)
    model = open_clip.CLIP(**cfg).eval()
    return OpenClipEncoder(model, Preprocessing((32, 32), (0.48, 0.46, 0.41), (0.27, 0.26, 0.28), 3), name="open-clip-tiny")
