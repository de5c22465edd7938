"""open_clip: adapter — a tiny custom architecture, weights saved locally and loaded back through the spec."""
from __future__ import annotations

import json

import pytest
import torch

from medrep.errors import MedrepError
from medrep.models import load_encoder, load_text_encoder
from medrep.models.open_clip_adapter import OpenClipEncoder

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def _norm(x):
    return (x - torch.tensor(CLIP_MEAN).view(1, -1, 1, 1)) / torch.tensor(CLIP_STD).view(1, -1, 1, 1)


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_local_weights_reproduce_encode_image(open_clip_files, pixels, fmt):
    enc = load_encoder(f"open_clip:tiny-clip@{open_clip_files[fmt]}?config={open_clip_files['config']}")
    ref = open_clip_files["model"]
    assert isinstance(enc, OpenClipEncoder)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(pixels), ref.encode_image(_norm(pixels)), atol=1e-5, rtol=1e-5)
    assert enc.weights_digest() != ""
    assert enc.preprocessing.size == (32, 32) and enc.preprocessing.interpolation == "bicubic"


def test_token_grid_patches_and_layers_match_open_clip_intermediates(open_clip_files, pixels):
    enc = load_encoder(f"open_clip:tiny-clip@{open_clip_files['safetensors']}?config={open_clip_files['config']}")
    grid = enc.token_grid
    assert (grid.height, grid.width, grid.patch_size, grid.num_prefix_tokens, grid.has_cls) == (4, 4, (8, 8), 1, True)
    assert enc.default_layer == "visual.ln_post"
    ref = open_clip_files["model"]
    with torch.no_grad():
        inter = ref.visual.forward_intermediates(_norm(pixels), indices=[0], output_fmt="NLC", output_extra_tokens=True)
        block0 = enc.embed(pixels, layer="visual.transformer.resblocks.0", pool="patches")
        patches = enc.embed(pixels, pool="patches")
    torch.testing.assert_close(block0, inter["image_intermediates"][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(enc.embed(pixels, layer="visual.transformer.resblocks.0").detach(),
                               inter["image_intermediates_prefix"][0][:, 0], atol=1e-5, rtol=1e-5)
    assert patches.shape == (3, 16, 32)


def test_gradients_reach_pixels(open_clip_files, pixels):
    enc = load_encoder(f"open_clip:tiny-clip@{open_clip_files['safetensors']}?config={open_clip_files['config']}")
    x = pixels.clone().requires_grad_()
    enc.embed(x).norm(dim=-1).sum().backward()
    assert x.grad.abs().sum() > 0


def test_text_tower_uses_open_clip_tokenizer(open_clip_files):
    import open_clip

    spec = f"open_clip:tiny-clip@{open_clip_files['safetensors']}?config={open_clip_files['config']}"
    text = load_text_encoder(spec)
    texts = ["a chest radiograph with an opacity", "a normal chest radiograph"]
    with torch.no_grad():
        ref = open_clip_files["model"].encode_text(open_clip.get_tokenizer("tiny-clip")(texts))
    torch.testing.assert_close(text.encode_text(texts), ref, atol=1e-5, rtol=1e-5)
    assert load_encoder(spec).text_encoder.encode_text(texts).shape == (2, 16)


def test_local_dir_folder_loads_through_open_clip(open_clip_files, tmp_path, pixels):
    import shutil

    folder = tmp_path / "oc"
    folder.mkdir()
    model_cfg = json.loads(open(open_clip_files["config"]).read())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
    shutil.copy(open_clip_files["safetensors"], folder / "open_clip_model.safetensors")
    for spec in (f"open_clip:local-dir:{folder}", str(folder)):  # a bare folder goes through the file scheme
        enc = load_encoder(spec)
        with torch.no_grad():
            torch.testing.assert_close(enc.embed(pixels), open_clip_files["model"].encode_image(_norm(pixels)),
                                       atol=1e-5, rtol=1e-5)


def test_bad_open_clip_specs(open_clip_files, tmp_path):
    with pytest.raises(MedrepError, match="no architecture 'ViT-Nope'"):
        load_encoder("open_clip:ViT-Nope")
    with pytest.raises(MedrepError, match="config not found") as info:
        load_encoder(f"open_clip:tiny-clip?config={tmp_path / 'missing.json'}")
    assert info.value.where == str(tmp_path / "missing.json")
    missing = str(tmp_path / "w.safetensors")
    with pytest.raises(MedrepError, match="not found") as info:
        load_encoder(f"open_clip:tiny-clip@{missing}?config={open_clip_files['config']}")
    assert info.value.where == missing
    # Weights from another architecture: refused with the offending keys, not silently half-loaded.
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"visual.proj": torch.zeros(32, 8), "bogus.weight": torch.zeros(1)}, str(other))
    with pytest.raises(MedrepError, match="do not fit") as info:
        load_encoder(f"open_clip:tiny-clip@{other}?config={open_clip_files['config']}")
    assert info.value.where == str(other)
    with pytest.raises(MedrepError, match="unknown open_clip option"):
        load_encoder("open_clip:tiny-clip?colour=red")
    with pytest.raises(MedrepError, match="image_size must be an integer") as info:
        load_encoder(f"open_clip:tiny-clip?config={open_clip_files['config']}&image_size=big")
    assert info.value.where == "?image_size"


def test_timm_trunk_towers_take_grid_and_layer_from_timm(tmp_path, pixels):
    """BiomedCLIP-style models: the image tower is a timm ViT (``visual.trunk``) plus a linear projection."""
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 160, "timm_model_name": "test_vit", "timm_model_pretrained": False,
                                           "timm_pool": "token", "timm_proj": "linear"},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
    path = tmp_path / "tiny-timm-clip.json"
    path.write_text(json.dumps(cfg))
    enc = load_encoder(f"open_clip:tiny-timm-clip?config={path}")
    assert enc.default_layer == "visual.trunk.norm"
    assert (enc.token_grid.height, enc.token_grid.width, enc.token_grid.num_prefix_tokens) == (10, 10, 1)
    with torch.no_grad():
        x = enc.preprocess(pixels)
        torch.testing.assert_close(enc.embed(pixels, pool="patches"), enc.module.visual.trunk.forward_features(x)[:, 1:])
        torch.testing.assert_close(enc.embed(pixels), enc.module.visual.head(enc.module.visual.trunk(x)))
