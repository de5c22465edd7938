"""hf: adapter — every default embedding equals transformers' own forward on the same normalised input."""
from __future__ import annotations

import pytest
import torch

from medrep.errors import MedrepError
from medrep.models import load_encoder, load_text_encoder
from medrep.models.hf_adapter import HFEncoder, load_hf_config


def _norm(x, mean, std):
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def test_vit_classifier_matches_transformers_forward(hf_vit_dir, pixels):
    from transformers import ViTForImageClassification

    enc = load_encoder(f"hf:{hf_vit_dir}")
    ref = ViTForImageClassification.from_pretrained(hf_vit_dir).eval()
    x = _norm(pixels, (0.5,) * 3, (0.5,) * 3)  # ViT's processor defaults: no preprocessor_config.json here
    with torch.no_grad():
        out = ref(pixel_values=x, output_hidden_states=True)
        emb = enc.embed(pixels)
        logits = enc.logits(pixels)
        layer0 = enc.embed(pixels, layer="vit.layers.0", pool="patches")
    assert isinstance(enc, HFEncoder) and enc.has_head and enc.class_names == ["benign", "malignant", "normal"]
    torch.testing.assert_close(logits, out.logits, atol=1e-5, rtol=1e-5)
    # The classifier reads the CLS token of the final layernorm's output.
    torch.testing.assert_close(emb, ref.vit(pixel_values=x).last_hidden_state[:, 0].detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer0, out.hidden_states[1][:, 1:], atol=1e-5, rtol=1e-5)
    assert enc.default_layer == "vit.layernorm"
    assert enc.embed(pixels, pool="patches").shape == (3, 16, 32)
    assert enc.embed(pixels, pool="map").shape == (3, 32, 4, 4)


def test_models_load_with_eager_attention_so_maps_can_be_captured(hf_vit_dir, pixels):
    enc = load_encoder(f"hf:{hf_vit_dir}")
    assert enc.module.config._attn_implementation == "eager"
    out = enc.module(pixel_values=enc.preprocess(pixels), output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (3, 2, 17, 17)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(3, 2, 17))


def test_gradients_flow_to_raw_pixels(hf_vit_dir, pixels):
    enc = load_encoder(f"hf:{hf_vit_dir}")
    x = pixels.clone().requires_grad_()
    enc.embed(x, pool="mean").pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in enc.module.parameters())


def test_dinov2_register_tokens_are_excluded_from_patches(hf_dinov2_reg_dir, pixels):
    from transformers import Dinov2WithRegistersModel

    enc = load_encoder(f"hf:{hf_dinov2_reg_dir}")
    grid = enc.token_grid
    assert (grid.height, grid.width, grid.num_prefix_tokens, grid.num_register_tokens, grid.has_cls) == (4, 4, 5, 4, True)
    ref = Dinov2WithRegistersModel.from_pretrained(hf_dinov2_reg_dir).eval()
    # No processor config: DINOv2's ImageNet statistics.
    x = _norm(pixels, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with torch.no_grad():
        hidden = ref(pixel_values=x).last_hidden_state
        torch.testing.assert_close(enc.embed(pixels), hidden[:, 0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc.embed(pixels, pool="patches"), hidden[:, 5:], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc.embed(pixels, pool="mean"), hidden[:, 5:].mean(1), atol=1e-5, rtol=1e-5)


def test_clip_uses_processor_config_and_projected_image_features(hf_clip_dir, pixels):
    from transformers import AutoImageProcessor, CLIPModel

    enc = load_encoder(f"hf:{hf_clip_dir}")
    prep = enc.preprocessing
    assert prep.mean == (0.40, 0.45, 0.41) and prep.std == (0.27, 0.26, 0.28) and prep.interpolation == "bicubic"
    # Independent reference for the normalisation: transformers' own image processor.
    proc = AutoImageProcessor.from_pretrained(hf_clip_dir)
    x = proc(images=[im.permute(1, 2, 0).numpy() for im in pixels], do_rescale=False, return_tensors="pt").pixel_values
    torch.testing.assert_close(enc.preprocess(pixels), x, atol=1e-5, rtol=1e-5)
    ref = CLIPModel.from_pretrained(hf_clip_dir).eval()
    with torch.no_grad():
        feats = ref.get_image_features(pixel_values=x)
        feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
        tokens = ref.vision_model(pixel_values=x).last_hidden_state
        torch.testing.assert_close(enc.embed(pixels), feats, atol=1e-5, rtol=1e-5)
        assert enc.embed(pixels).shape == (3, 16)  # projection_dim
        torch.testing.assert_close(enc.embed(pixels, pool="patches"), tokens[:, 1:], atol=1e-5, rtol=1e-5)
        # A layer outside the vision encoder still fires: capture runs the image side incl. the projection.
        torch.testing.assert_close(enc.embed(pixels, layer="visual_projection"), feats, atol=1e-5, rtol=1e-5)


def test_clip_text_tower_matches_get_text_features(hf_clip_dir, text_tokenizer):
    from transformers import CLIPModel

    texts = ["a round lesion", "healthy tissue with no findings", "x"]
    text = load_text_encoder(f"hf:{hf_clip_dir}")
    enc = load_encoder(f"hf:{hf_clip_dir}")
    ref = CLIPModel.from_pretrained(hf_clip_dir).eval()
    tok = text_tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        feats = ref.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
    torch.testing.assert_close(text.encode_text(texts), feats, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(enc.text_encoder.encode_text(texts), feats, atol=1e-5, rtol=1e-5)
    assert text.fingerprint == enc.text_encoder.fingerprint


def test_siglip_has_no_cls_and_pools_with_its_head(hf_siglip_dir, pixels):
    from transformers import SiglipModel

    enc = load_encoder(f"hf:{hf_siglip_dir}")
    grid = enc.token_grid
    assert (grid.num_prefix_tokens, grid.has_cls, enc.default_pool) == (0, False, "mean")
    ref = SiglipModel.from_pretrained(hf_siglip_dir).eval()
    x = _norm(pixels, (0.5,) * 3, (0.5,) * 3)
    with torch.no_grad():
        out = ref.vision_model(pixel_values=x)
        torch.testing.assert_close(enc.embed(pixels), out.pooler_output, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc.embed(pixels, pool="patches"), out.last_hidden_state, atol=1e-5, rtol=1e-5)
    with pytest.raises(MedrepError, match="no CLS token") as info:
        enc.embed(pixels, layer="vision_model.encoder.layers.1", pool="cls")
    assert info.value.where == "pool"
    text = enc.text_encoder.encode_text(["a lesion", "no lesion"])
    tok = enc.text_encoder.tokenizer(["a lesion", "no lesion"], padding="max_length", max_length=32, return_tensors="pt")
    with torch.no_grad():
        feats = ref.get_text_features(input_ids=tok["input_ids"])
    torch.testing.assert_close(text, feats if isinstance(feats, torch.Tensor) else feats.pooler_output, atol=1e-5, rtol=1e-5)


def test_bad_hf_specs_name_the_culprit(tmp_path, hf_vit_dir, minilm_dir, pixels):
    missing = str(tmp_path / "nope")
    with pytest.raises(MedrepError) as info:
        load_encoder(f"hf:{missing}")
    assert info.value.where == missing
    with pytest.raises(MedrepError, match="not a vision model") as info:
        load_encoder(f"hf:{minilm_dir}")
    assert info.value.where == minilm_dir
    with pytest.raises(MedrepError, match="unknown hf option") as info:
        load_encoder(f"hf:{hf_vit_dir}?colour=blue")
    enc = load_encoder(f"hf:{hf_vit_dir}")
    with pytest.raises(MedrepError, match="no layer 'vit.layers.9'") as info:
        enc.embed(pixels, layer="vit.layers.9")
    assert info.value.where == "layer"
    with pytest.raises(MedrepError, match="has no text tower") as info:
        load_text_encoder(f"hf:{hf_vit_dir}")


def test_other_vision_models_load_through_automodel(tmp_path, pixels):
    from transformers import DeiTConfig, DeiTModel

    torch.manual_seed(5)
    DeiTModel(DeiTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
                         patch_size=8)).save_pretrained(tmp_path / "deit")
    enc = load_encoder(f"hf:{tmp_path / 'deit'}")
    assert enc.token_grid.num_prefix_tokens == 2  # CLS + distillation token, counted from a real forward pass
    ref = DeiTModel.from_pretrained(tmp_path / "deit").eval()
    with torch.no_grad():
        out = ref(pixel_values=enc.preprocess(pixels))
        torch.testing.assert_close(enc.embed(pixels), out.pooler_output, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc.embed(pixels, pool="patches"), out.last_hidden_state[:, 2:], atol=1e-5, rtol=1e-5)


def test_remote_code_never_runs_without_the_flag(tmp_path, monkeypatch):
    flag = tmp_path / "ran"
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "customnet", "auto_map": {"AutoConfig": "custom.CustomConfig"}}')
    (folder / "custom.py").write_text(f"open({str(flag)!r}, 'w').write('ran')\n"
                                      "from transformers import PretrainedConfig\n"
                                      "class CustomConfig(PretrainedConfig):\n    model_type = 'customnet'\n")
    with pytest.raises(MedrepError, match="--trust-remote-code") as info:
        load_encoder(f"hf:{folder}")
    assert info.value.where == str(folder)
    assert not flag.exists()
    # Control: with the flag the same folder's code does run (so the check above can fail).
    from transformers import dynamic_module_utils

    monkeypatch.setattr(dynamic_module_utils, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    load_hf_config(str(folder), trust_remote_code=True)
    assert flag.exists()


@pytest.mark.parametrize("cls_name, prefix", [("CLIPVisionModel", 1), ("CLIPVisionModelWithProjection", 1),
                                              ("SiglipVisionModel", 0)])
def test_vision_only_towers(tmp_path, pixels, cls_name, prefix):
    import transformers

    family = "Siglip" if cls_name.startswith("Siglip") else "CLIP"
    config = getattr(transformers, f"{family}VisionConfig")(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                            intermediate_size=64, image_size=32, patch_size=8,
                                                            projection_dim=8)
    torch.manual_seed(6)
    ref = getattr(transformers, cls_name)(config).eval()
    ref.save_pretrained(tmp_path / "tower")
    enc = load_encoder(f"hf:{tmp_path / 'tower'}")
    assert not enc.dual and enc.text_encoder is None and enc.token_grid.num_prefix_tokens == prefix
    with torch.no_grad():
        out = ref(pixel_values=enc.preprocess(pixels))
        pooled = out.image_embeds if cls_name.endswith("WithProjection") else out.pooler_output
        torch.testing.assert_close(enc.embed(pixels), pooled, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc.embed(pixels, pool="patches"), out.last_hidden_state[:, prefix:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spec, where", [
    ("hf:microsoft/rad-dino", "microsoft/rad-dino"),
    ("open_clip:hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
     "open_clip:hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"),
])
def test_hub_names_take_the_hub_path_and_fail_cleanly_offline(spec, where):
    # With internet these load the real models; offline (tests, CI) the hub path must end in a clear error.
    with pytest.raises(MedrepError) as info:
        load_encoder(spec)
    assert info.value.where == where
