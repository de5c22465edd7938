"""Hugging Face models beyond ViT / DINOv2 / CLIP / SigLIP: classification checkpoints embed with their
backbone, MAE keeps every patch, a checkpoint without pooler weights never uses a random pooler, and the
token grid follows the size the model is fed (DINOv2: config 518, processor crop 224)."""
from __future__ import annotations

import json

import pytest
import torch

from medrep.models import load_encoder

KW = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def pixels():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _norm(x, mean, std):
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_classification_checkpoints_embed_with_their_backbones_pooled_output(tmp_path, pixels):
    from transformers import (BeitConfig, BeitForImageClassification, ConvNextConfig, ConvNextForImageClassification,
                              ResNetConfig, ResNetForImageClassification)

    torch.manual_seed(0)
    models = {
        "convnext": ConvNextForImageClassification(ConvNextConfig(image_size=32, hidden_sizes=[8, 16, 32, 64],
                                                                  depths=[1, 1, 1, 1], num_labels=3)),
        "resnet": ResNetForImageClassification(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                                            num_labels=3)),
        "beit": BeitForImageClassification(BeitConfig(num_labels=3, use_mean_pooling=True, **KW)),
    }
    for name, ref in models.items():
        ref.eval().save_pretrained(tmp_path / name)
        enc = load_encoder(f"hf:{tmp_path / name}")
        x = enc.preprocess(pixels)  # (ResNet configs name no image size: medrep feeds 224 px, as its processor would)
        with torch.no_grad():
            pooled = ref.base_model(pixel_values=x).pooler_output.flatten(1)
            torch.testing.assert_close(enc.embed(pixels), pooled, atol=1e-5, rtol=1e-5, msg=name)
            torch.testing.assert_close(enc.logits(pixels), ref(pixel_values=x).logits, atol=1e-5, rtol=1e-5)
        assert not enc.default_is_plain_pool
        # the readout token explanations follow: BEiT's classifier averages its patch tokens (use_mean_pooling)
        assert enc.default_pool == "mean"


def test_mae_keeps_every_patch_in_order(tmp_path, pixels):
    from transformers import ViTMAEConfig, ViTMAEModel

    torch.manual_seed(0)
    ViTMAEModel(ViTMAEConfig(**KW)).eval().save_pretrained(tmp_path / "mae")
    enc = load_encoder(f"hf:{tmp_path / 'mae'}")
    ref = ViTMAEModel(ViTMAEConfig(mask_ratio=0.0, **KW))
    ref.load_state_dict(ViTMAEModel.from_pretrained(tmp_path / "mae").state_dict())
    noise = torch.arange(16.0).expand(2, 16)  # ascending noise: MAE's shuffle becomes the identity
    with torch.no_grad():
        a, b = enc.embed(pixels), enc.embed(pixels)
        out = ref.eval()(pixel_values=_norm(pixels, *IMAGENET), noise=noise).last_hidden_state
        torch.testing.assert_close(a, out[:, 0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc.embed(pixels, pool="patches"), out[:, 1:], atol=1e-5, rtol=1e-5)
    assert torch.equal(a, b)


def test_a_checkpoint_without_pooler_weights_uses_the_cls_token_and_keeps_one_fingerprint(tmp_path, pixels):
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher

    torch.manual_seed(0)
    DeiTForImageClassificationWithTeacher(DeiTConfig(num_labels=3, **KW)).eval().save_pretrained(tmp_path / "deit")
    one, two = load_encoder(f"hf:{tmp_path / 'deit'}"), load_encoder(f"hf:{tmp_path / 'deit'}")
    assert one.random_pooler and one.fingerprint == two.fingerprint
    with torch.no_grad():
        assert torch.equal(one.embed(pixels), two.embed(pixels))
        hidden = one.module(pixel_values=one.preprocess(pixels)).last_hidden_state
        torch.testing.assert_close(one.embed(pixels), hidden[:, 0])


def test_dinov2_token_grid_follows_the_processor_crop(tmp_path, pixels):
    from transformers import Dinov2Config, Dinov2Model

    d = tmp_path / "dinov2"
    Dinov2Model(Dinov2Config(**{**KW, "image_size": 64})).save_pretrained(d)
    (d / "preprocessor_config.json").write_text(json.dumps(
        {"do_center_crop": True, "crop_size": {"height": 32, "width": 32}, "size": {"shortest_edge": 36},
         "image_mean": list(IMAGENET[0]), "image_std": list(IMAGENET[1])}))
    enc = load_encoder(f"hf:{d}")
    assert (enc.token_grid.height, enc.token_grid.width) == (4, 4)
    assert enc.eval_crop_pct == pytest.approx(32 / 36)
    with torch.no_grad():
        assert enc.embed(pixels, pool="patches").shape == (2, 16, 32)
        assert enc.embed(pixels, pool="map").shape == (2, 32, 4, 4)


def test_siglip_explicit_mean_is_the_mean_of_its_tokens_not_its_attention_pool(hf_siglip_dir, pixels):
    enc = load_encoder(f"hf:{hf_siglip_dir}")
    with torch.no_grad():
        tokens = enc.embed(pixels, pool="patches")
        torch.testing.assert_close(enc.embed(pixels, pool="mean"), tokens.mean(1), atol=1e-6, rtol=1e-6)
        assert not torch.allclose(enc.embed(pixels), tokens.mean(1), atol=1e-3)
