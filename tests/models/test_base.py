"""The Encoder interface: preprocessing, embeddings at layers and poolings, gradients, fingerprints."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medrep.errors import MedrepError
from medrep.models import Preprocessing, load_encoder
from medrep.models.base import match_channels


def test_preprocessing_matches_manual_normalisation():
    prep = Preprocessing(size=(16, 16), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), channels=3, interpolation="bilinear")
    x = torch.rand(2, 1, 32, 32)
    y = prep(x)
    manual = F.interpolate(x.expand(-1, 3, -1, -1), size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    manual = (manual - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    assert torch.allclose(y, manual, atol=1e-6)


def test_rgb_to_gray_uses_luminance():
    x = torch.zeros(1, 3, 2, 2)
    x[:, 0] = 1.0
    assert torch.allclose(match_channels(x, 1), torch.full((1, 1, 2, 2), 0.299))


def test_timm_vit_default_embedding_is_cls_after_final_norm(tiny_vit):
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        ours = tiny_vit.embed(x)
        m = tiny_vit.module
        xin = tiny_vit.preprocess(x)
        ref = m.norm(m.forward_features(xin) if False else m.blocks(m._pos_embed(m.patch_embed(xin))))[:, 0]
    assert ours.shape == (3, 192)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_poolings_and_layers_follow_the_token_grid(tiny_vit):
    grid = tiny_vit.token_grid
    assert (grid.height, grid.width, grid.patch_size, grid.num_prefix_tokens) == (4, 4, (8, 8), 1)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        patches = tiny_vit.embed(x, pool="patches")
        mean = tiny_vit.embed(x, pool="mean")
        block0 = tiny_vit.embed(x, layer="blocks.0", pool="patches")
        m = tiny_vit.module
        tokens = m.blocks[0](m._pos_embed(m.patch_embed(tiny_vit.preprocess(x))))
    assert patches.shape == (2, 16, 192)
    assert torch.allclose(mean, patches.mean(1), atol=1e-5)
    assert torch.allclose(block0, tokens[:, 1:], atol=1e-5)


def test_gradients_reach_pixels_not_parameters(tiny_vit):
    x = torch.rand(2, 1, 32, 32, requires_grad=True)
    tiny_vit.embed(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_vit.module.parameters())


def test_unknown_layer_and_pool_are_named(tiny_vit):
    x = torch.rand(1, 1, 32, 32)
    with pytest.raises(MedrepError, match="blocks.9"):
        tiny_vit.embed(x, layer="blocks.9")
    with pytest.raises(MedrepError, match="^pool: "):
        tiny_vit.embed(x, pool="max")


def test_fingerprint_changes_with_weights_and_preprocessing(tiny_vit):
    from dataclasses import replace

    fp = tiny_vit.fingerprint
    other = load_encoder("timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=3")
    with torch.no_grad():
        other.module.load_state_dict(tiny_vit.module.state_dict())
    assert other.fingerprint == fp
    other.preprocessing = replace(other.preprocessing, mean=(0.4, 0.4, 0.4))
    assert other.fingerprint != fp
    with torch.no_grad():
        tiny_vit.module.head.bias.add_(1.0)
    tiny_vit._weights_digest = None
    assert tiny_vit.fingerprint != fp


def test_plain_module_encoder_from_python():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    enc = load_encoder(net, preprocessing=Preprocessing((8, 8), (0.5,), (0.25,), channels=1), name="mine",
                       head=nn.Linear(4, 2))
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(enc.embed(x), net((x - 0.5) / 0.25))
        assert enc.logits(x).shape == (5, 2)
    with pytest.raises(MedrepError, match="preprocessing"):
        load_encoder(net)


def test_unknown_spec_is_a_clear_error():
    with pytest.raises(MedrepError, match="unknown model spec"):
        load_encoder("no-such-model")
    with pytest.raises(MedrepError, match="timm has no model"):
        load_encoder("timm:definitely_not_a_model?pretrained=false")


def test_torchvision_repair_lets_vision_libraries_import():
    code = "import medrep, timm, open_clip, torchvision; from transformers import ViTModel; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


@pytest.mark.parametrize("spec", ["demo-vit", "demo-cnn"])
def test_demo_models_are_accurate_on_the_phantom_test_split(spec, phantoms):
    enc = load_encoder(spec)
    test = phantoms.split("test")
    images = test.images.float() / 255
    with torch.inference_mode():
        pred = torch.cat([enc.logits(images[i : i + 200]).argmax(1) for i in range(0, len(test), 200)]).numpy()
    accuracy = float((pred == test.labels).mean())
    assert accuracy >= 0.995, f"{spec}: {accuracy:.3f}"  # README: 99.8% / 100% (at most 3 misses of 600)
    assert enc.class_names == ["normal", "benign", "malignant"]
    if spec == "demo-vit":
        assert enc.token_grid.height == enc.token_grid.width == 8
        assert type(enc.module).__name__ == "VisionTransformer"
