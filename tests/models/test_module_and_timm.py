"""Plain nn.Modules from Python, the generic timm path for CNNs, and bad specs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from medrep.errors import MedrepError, SpecError
from medrep.models import Preprocessing, load_encoder


def test_plain_module_with_head_and_layer_capture(pixels):
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2, padding=1))
    head = nn.Linear(8, 2)
    prep = Preprocessing(size=(16, 16), mean=(0.3,), std=(0.2,), channels=1)
    enc = load_encoder(body, preprocessing=prep, head=head, name="toy", default_layer="2")
    grey = pixels[:, :1]
    x = (torch.nn.functional.interpolate(grey, size=(16, 16), mode="bilinear", antialias=True) - 0.3) / 0.2
    with torch.no_grad():
        fmap = body(x)
        torch.testing.assert_close(enc.embed(grey), fmap.mean(dim=(2, 3)))
        torch.testing.assert_close(enc.logits(grey), head(fmap.mean(dim=(2, 3))))
        torch.testing.assert_close(enc.embed(grey, layer="0", pool="map"), body[0](x))
        assert enc.embed(grey, pool="patches").shape == (3, 64, 8)
    # RGB input meets a one-channel model through the luminance conversion, and gradients reach it.
    rgb = pixels.clone().requires_grad_()
    enc.logits(rgb)[:, 1].sum().backward()
    assert rgb.grad.abs().sum() > 0


def test_timm_cnn_default_embedding_is_pooled_features(pixels):
    torch.manual_seed(0)
    enc = load_encoder("timm:test_resnet?pretrained=false&num_classes=4")
    assert enc.token_grid is None and enc.default_pool == "mean" and enc.has_head
    x = enc.preprocess(pixels)
    with torch.no_grad():
        feats = enc.module.forward_features(x)
        torch.testing.assert_close(enc.embed(pixels), feats.mean(dim=(2, 3)), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc.logits(pixels), enc.module(x), atol=1e-5, rtol=1e-5)
        # timm's own intermediates API (index 3 = layer3, after the stem at 0) as the reference for capture.
        ref = enc.module.forward_intermediates(x, indices=[3], intermediates_only=True)[0]
        torch.testing.assert_close(enc.embed(pixels, layer="layer3", pool="map"), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spec, where, names", [
    ("nonsense:thing", "model", "nonsense:thing"),
    ("timm:not_a_model_xyz?pretrained=false", "model", "not_a_model_xyz"),
    ("minilm", "model", "minilm"),  # text encoders asked for as image models
    ("hf-text:some/model", "hf-text:some/model", "text encoders"),
    ("timm:vit_tiny_patch16_224?pretrained=false&img_size=big", "?img_size", "'big'"),
    ("timm:resnet18?pretrained=false&img_size=64", "model", "img_size"),  # an option resnets do not take
])
def test_bad_image_specs_are_clear(spec, where, names):
    with pytest.raises(MedrepError) as info:
        load_encoder(spec)
    assert info.value.where == where
    assert names in str(info.value)


def test_module_without_preprocessing_is_refused():
    with pytest.raises(SpecError, match="preprocessing") as info:
        load_encoder(nn.Identity())
    assert info.value.where == "load_encoder"
