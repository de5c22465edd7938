"""Tiny models built from configs and saved locally: the same loading code paths as real checkpoints."""
from __future__ import annotations

import json

import pytest
import torch

# 32 px images, 8 px patches → a 4×4 grid; hidden 32, 2 layers: every model here loads in well under a second.
VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)
OPEN_CLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="session")
def minilm_dir():
    from medrep.models.text import minilm_path

    return minilm_path()


@pytest.fixture(scope="session")
def text_tokenizer(minilm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir)


def _text_config(tok, **extra):
    return dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=tok.vocab_size,
                eos_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id, pad_token_id=tok.pad_token_id,
                max_position_embeddings=32, **extra)


@pytest.fixture(scope="session")
def hf_vit_dir(tmp_path_factory):
    """A ViTForImageClassification (3 labels) with no preprocessor_config.json (family defaults apply)."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    cfg = ViTConfig(**VISION, num_labels=3, id2label={0: "benign", 1: "malignant", 2: "normal"},
                    label2id={"benign": 0, "malignant": 1, "normal": 2})
    path = tmp_path_factory.mktemp("hf") / "vit"
    ViTForImageClassification(cfg).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def hf_dinov2_reg_dir(tmp_path_factory):
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    torch.manual_seed(1)
    cfg = Dinov2WithRegistersConfig(**{k: v for k, v in VISION.items() if k != "intermediate_size"}, num_register_tokens=4)
    path = tmp_path_factory.mktemp("hf") / "dinov2reg"
    Dinov2WithRegistersModel(cfg).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def hf_clip_dir(tmp_path_factory, text_tokenizer):
    """A full CLIPModel with a tokenizer and a preprocessor_config.json (non-default statistics, bicubic)."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(2)
    cfg = CLIPConfig(text_config=_text_config(text_tokenizer), vision_config=VISION, projection_dim=16)
    path = tmp_path_factory.mktemp("hf") / "clip"
    CLIPModel(cfg).save_pretrained(path)
    text_tokenizer.save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": 32},
        "do_center_crop": True, "crop_size": {"height": 32, "width": 32}, "do_normalize": True,
        "image_mean": [0.40, 0.45, 0.41], "image_std": [0.27, 0.26, 0.28], "resample": 3}))
    return str(path)


@pytest.fixture(scope="session")
def hf_siglip_dir(tmp_path_factory, text_tokenizer):
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(3)
    cfg = SiglipConfig(text_config=_text_config(text_tokenizer), vision_config=VISION)
    path = tmp_path_factory.mktemp("hf") / "siglip"
    SiglipModel(cfg).save_pretrained(path)
    text_tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def open_clip_files(tmp_path_factory):
    """A tiny open_clip architecture (config JSON) and its random weights saved as safetensors and .pt."""
    import open_clip
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("open_clip")
    cfg = root / "tiny-clip.json"
    cfg.write_text(json.dumps(OPEN_CLIP_CFG))
    open_clip.add_model_config(cfg)
    torch.manual_seed(4)
    model = open_clip.create_model("tiny-clip").eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(root / "tiny.safetensors"))
    torch.save(state, root / "tiny.pt")
    return {"config": str(cfg), "safetensors": str(root / "tiny.safetensors"), "pt": str(root / "tiny.pt"),
            "model": model, "root": root}


@pytest.fixture()
def pixels():
    torch.manual_seed(7)
    return torch.rand(3, 3, 32, 32)
