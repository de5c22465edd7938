"""Builders of random-weight models from the published configurations, shrunk in depth, width and resolution
only, saved the way their hubs store them (Hugging Face ``save_pretrained`` folders with config.json,
model.safetensors and preprocessor_config.json; open_clip folders with open_clip_config.json and weights;
timm weights files).  Each returns the spec medrep loads it by."""
from __future__ import annotations

import json
from pathlib import Path

import torch

# What is shrunk: hidden 768 → 32, 12 layers → 2, 12 heads → 2, 224/518 px → 32/56 px.
SHRUNK = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)


def _quiet_save(model, path: Path) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(path)


def _write(path: Path, name: str, data: dict) -> None:
    (path / name).write_text(json.dumps(data, indent=1))


def _minilm_tokenizer():
    from transformers import AutoTokenizer

    from medrep.models.text import minilm_path

    return AutoTokenizer.from_pretrained(minilm_path())


def _text_config(tok) -> dict:
    return dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=tok.vocab_size,
                eos_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id, pad_token_id=tok.pad_token_id,
                max_position_embeddings=32)


def hf_vit(root: Path) -> str:
    """google/vit-base-patch16-224: ViTForImageClassification (ImageNet head), ViTImageProcessor (0.5/0.5, bilinear)."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(10)
    labels = {i: f"imagenet class {i}" for i in range(10)}
    cfg = ViTConfig(**SHRUNK, image_size=32, patch_size=8, qkv_bias=True, num_labels=10, id2label=labels,
                    label2id={v: k for k, v in labels.items()})
    path = root / "vit-base-patch16-224"
    _quiet_save(ViTForImageClassification(cfg), path)
    _write(path, "preprocessor_config.json", {"image_processor_type": "ViTImageProcessor", "do_resize": True,
                                               "size": {"height": 32, "width": 32}, "resample": 2, "do_normalize": True,
                                               "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})
    return f"hf:{path}"


def hf_rad_dino(root: Path) -> str:
    """microsoft/rad-dino: Dinov2Model (patch 14, layerscale 1e-5, 518 px) and its BitImageProcessor
    (shortest edge 518, centre crop 518, bicubic, ImageNet statistics) — 518 → 56 px here."""
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(11)
    cfg = Dinov2Config(**{k: v for k, v in SHRUNK.items() if k != "intermediate_size"}, mlp_ratio=4, image_size=56,
                       patch_size=14, layerscale_value=1e-5, use_swiglu_ffn=False, qkv_bias=True)
    path = root / "rad-dino"
    _quiet_save(Dinov2Model(cfg), path)
    _write(path, "preprocessor_config.json", {
        "image_processor_type": "BitImageProcessor", "do_resize": True, "size": {"shortest_edge": 56}, "resample": 3,
        "do_center_crop": True, "crop_size": {"height": 56, "width": 56}, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": [0.5307, 0.5307, 0.5307], "image_std": [0.2583, 0.2583, 0.2583],
        "do_convert_rgb": True})
    return f"hf:{path}"


def hf_dinov2_registers(root: Path) -> str:
    """facebook/dinov2-with-registers-base: 4 register tokens, patch 14, processor crop 224 → 56 px."""
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    torch.manual_seed(12)
    cfg = Dinov2WithRegistersConfig(**{k: v for k, v in SHRUNK.items() if k != "intermediate_size"}, mlp_ratio=4,
                                    image_size=56, patch_size=14, num_register_tokens=4, layerscale_value=1.0)
    path = root / "dinov2-with-registers"
    _quiet_save(Dinov2WithRegistersModel(cfg), path)
    _write(path, "preprocessor_config.json", {
        "image_processor_type": "BitImageProcessor", "do_resize": True, "size": {"shortest_edge": 64}, "resample": 3,
        "do_center_crop": True, "crop_size": {"height": 56, "width": 56}, "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]})
    return f"hf:{path}"


def hf_clip(root: Path) -> str:
    """openai/clip-vit-base-patch16: CLIPModel (vision + text towers, projection), CLIPImageProcessor."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(13)
    tok = _minilm_tokenizer()
    cfg = CLIPConfig(text_config=_text_config(tok), vision_config=dict(**SHRUNK, image_size=32, patch_size=8),
                     projection_dim=16)
    path = root / "clip-vit-base-patch16"
    _quiet_save(CLIPModel(cfg), path)
    tok.save_pretrained(path)
    _write(path, "preprocessor_config.json", {
        "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": 32}, "resample": 3,
        "do_center_crop": True, "crop_size": {"height": 32, "width": 32}, "do_normalize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]})
    return f"hf:{path}"


def hf_siglip(root: Path, tower_only: bool = False) -> str:
    """google/siglip-base-patch16-224: SiglipModel (attention-pooling head, no CLS) or SiglipVisionModel alone."""
    from transformers import SiglipConfig, SiglipModel, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(14)
    vision = dict(**SHRUNK, image_size=32, patch_size=8)
    if tower_only:
        path = root / "siglip-vision"
        _quiet_save(SiglipVisionModel(SiglipVisionConfig(**vision)), path)
    else:
        tok = _minilm_tokenizer()
        path = root / "siglip-base-patch16-224"
        _quiet_save(SiglipModel(SiglipConfig(text_config=_text_config(tok), vision_config=vision)), path)
        tok.save_pretrained(path)
    _write(path, "preprocessor_config.json", {
        "image_processor_type": "SiglipImageProcessor", "do_resize": True, "size": {"height": 32, "width": 32},
        "resample": 3, "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})
    return f"hf:{path}"


def timm_vit_registers_map(root: Path) -> str:
    """timm ViT with 4 registers and MAP (attention-latent) pooling, e.g. vit_so400m_patch14_siglip / *_reg4_*:
    weights saved as a safetensors file, loaded by ``timm:NAME@FILE``."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(15)
    options = "img_size=32&patch_size=8&depth=2&reg_tokens=4&global_pool=map&num_classes=10"
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2, reg_tokens=4,
                              global_pool="map", num_classes=10)
    path = root / "vit_reg4_map.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return f"timm:vit_tiny_patch16_224@{path}?{options}"


OPEN_CLIP_VIT = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
                 "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


def open_clip_vit(root: Path) -> str:
    """open_clip's native ViT-B-16 (shrunk): a model-config JSON beside a safetensors weights file, loaded by
    ``open_clip:ARCH@WEIGHTS?config=FILE``."""
    import open_clip
    from safetensors.torch import save_file

    folder = root / "open_clip_vit"
    folder.mkdir()
    cfg = folder / "tiny-ViT-B-16.json"
    cfg.write_text(json.dumps(OPEN_CLIP_VIT))
    open_clip.add_model_config(cfg)
    torch.manual_seed(16)
    model = open_clip.create_model("tiny-ViT-B-16")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return f"open_clip:tiny-ViT-B-16@{folder / 'open_clip_model.safetensors'}?config={cfg}"


SHRUNK_TIMM_VIT = "vit_base_patch16_224_shrunk_for_tests"


def register_shrunk_timm_vit() -> None:
    """timm's vit_base_patch16_224 shrunk to width 32, depth 2, 64 px, registered with timm by name (once)."""
    import timm
    from timm.models import register_model
    from timm.models.vision_transformer import _create_vision_transformer

    if timm.is_model(SHRUNK_TIMM_VIT):
        return

    def vit_base_patch16_224_shrunk_for_tests(pretrained: bool = False, **kwargs):
        args = dict(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2)
        return _create_vision_transformer("vit_base_patch16_224", pretrained=False, **dict(args, **kwargs))

    register_model(vit_base_patch16_224_shrunk_for_tests)


def open_clip_biomedclip(root: Path) -> str:
    """BiomedCLIP's structure: open_clip CustomTextCLIP with a timm ViT-B/16 trunk (no pooling in the trunk, a
    linear projection) and a Hugging Face BERT text tower (MLP projection, CLS pooler), stored as BiomedCLIP's hub
    folder is: open_clip_config.json + open_clip_model.safetensors, loaded by ``open_clip:local-dir:DIR``.
    open_clip passes neither depth nor size to a timm trunk, so the shrunk ViT-B/16 trunk is registered with timm
    under its own name (:func:`register_shrunk_timm_vit`); the text tower is a 2-layer BERT with MiniLM's tokenizer, saved beside it."""
    import open_clip
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    folder = root / "biomedclip"
    folder.mkdir()
    tok = _minilm_tokenizer()
    text_dir = folder / "text-tower"
    torch.manual_seed(17)
    _quiet_save(BertModel(BertConfig(**_text_config(tok)), add_pooling_layer=False), text_dir)
    tok.save_pretrained(text_dir)
    register_shrunk_timm_vit()
    model_cfg = {"embed_dim": 16,
                 "vision_cfg": {"timm_model_name": SHRUNK_TIMM_VIT, "timm_model_pretrained": False, "timm_pool": "",
                                "timm_proj": "linear", "image_size": 64},
                 "text_cfg": {"hf_model_name": str(text_dir), "hf_tokenizer_name": str(text_dir), "hf_proj_type": "mlp",
                              "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 32}}
    tok.save_pretrained(folder)  # open_clip reads a local-dir model's tokenizer from the folder itself
    _write(folder, "open_clip_config.json", {"model_cfg": model_cfg, "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}})
    model = open_clip.create_model(f"local-dir:{folder}")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return f"open_clip:local-dir:{folder}"


def hf_resnet(root: Path) -> str:
    """A plain CNN: microsoft/resnet-50's structure (ResNetForImageClassification with an ImageNet-style head,
    ConvNextImageProcessor) shrunk to two stages of width 8/16 and 32 px."""
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(18)
    labels = {i: f"imagenet class {i}" for i in range(10)}
    cfg = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="bottleneck", num_labels=10,
                       id2label=labels, label2id={v: k for k, v in labels.items()})
    path = root / "resnet-50"
    _quiet_save(ResNetForImageClassification(cfg), path)
    _write(path, "preprocessor_config.json", {
        "image_processor_type": "ConvNextImageProcessor", "do_resize": True, "size": {"shortest_edge": 32},
        "crop_pct": 0.875, "resample": 3, "do_normalize": True, "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225]})
    return f"hf:{path}"
