"""The two demo encoders trained on lesion phantoms; their weights ship inside the package.

``demo-cnn-robust`` is demo-cnn fine-tuned by PGD adversarial training: the attacks' robust positive control.
``demo-vit`` is a real timm ``VisionTransformer`` (so every ViT code path — hooks on
``blocks[i].attn``, GradCAM on ``blocks[-1].norm1`` — is exercised on it) whose patch embedding is a
3-layer strided conv stem giving an 8×8 token grid at 64 px: a from-scratch ViT with plain patches
stays near 70% on a few thousand phantoms, the conv stem learns in minutes.  ``demo-cnn`` is a small
CNN (4 conv-BN-ReLU blocks → 256-d pooled embedding).  Weights are reproduced by
``python scripts/train_demo_models.py`` (seeded).
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from medrep.data.phantoms import CLASSES
from medrep.errors import MedrepError, Param
from medrep.models.base import ModuleEncoder, Preprocessing

WEIGHTS_DIR = Path(str(resources.files("medrep") / "models" / "weights"))
# Phantom pixel statistics (train split): the demo models standardise their input with these.
DEMO_PREPROCESSING = Preprocessing(size=(64, 64), mean=(0.42,), std=(0.11,), channels=1, interpolation="bilinear")


def build_demo_vit() -> nn.Module:
    from timm.layers import PatchEmbed
    from timm.models.vision_transformer import VisionTransformer

    class ConvStemPatchEmbed(PatchEmbed):
        """timm PatchEmbed whose projection is a strided conv stem (overall stride = patch size 8)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            dim = self.proj.out_channels
            in_chans = self.proj.in_channels
            self.proj = nn.Sequential(
                nn.Conv2d(in_chans, 48, 3, stride=2, padding=1), nn.BatchNorm2d(48), nn.GELU(),
                nn.Conv2d(48, 96, 3, stride=2, padding=1), nn.BatchNorm2d(96), nn.GELU(),
                nn.Conv2d(96, dim, 3, stride=2, padding=1),
            )

    return VisionTransformer(
        img_size=64, patch_size=8, in_chans=1, num_classes=len(CLASSES), embed_dim=192, depth=6, num_heads=3,
        mlp_ratio=3.0, embed_layer=ConvStemPatchEmbed, global_pool="token",
    )


class DemoCNN(nn.Module):
    def __init__(self, in_chans: int = 1, num_classes: int = len(CLASSES), width: int = 32):
        super().__init__()
        chans = [in_chans, width, width * 2, width * 4, width * 8]
        blocks = []
        for i in range(4):
            blocks.append(nn.Sequential(
                nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False), nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True),
                nn.Conv2d(chans[i + 1], chans[i + 1], 3, padding=1, bias=False), nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True),
                nn.MaxPool2d(2) if i < 3 else nn.Identity(),
            ))
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(chans[-1], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def build_demo_cnn() -> nn.Module:
    return DemoCNN()


#: demo-cnn-robust: demo-cnn's architecture, PGD adversarially trained (the robust positive control of the attacks)
BUILDERS = {"demo-vit": build_demo_vit, "demo-cnn": build_demo_cnn, "demo-cnn-robust": build_demo_cnn}


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.safetensors"


def load_demo_module(name: str) -> nn.Module:
    from safetensors.torch import load_file

    if name not in BUILDERS:
        from medrep.vocabulary import did_you_mean

        raise MedrepError(f"unknown demo model {name!r}{did_you_mean(name, BUILDERS)} (choose from {', '.join(BUILDERS)})",
                          where=Param("model"))
    module = BUILDERS[name]()
    path = weights_path(name)
    if not path.exists():
        raise MedrepError(
            "demo weights are missing from the package; rebuild them with `python scripts/train_demo_models.py`", where=str(path)
        )
    module.load_state_dict(load_file(str(path)))
    return module.eval()


def demo_encoder(name: str):
    """``demo-vit`` → timm adapter over the shipped ViT; ``demo-cnn`` (and ``demo-cnn-robust``) → module adapter
    with its head."""
    module = load_demo_module(name)
    meta_path = WEIGHTS_DIR / f"{name}.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    source = {"spec": name, "weights": str(weights_path(name)), "training": meta}
    if name == "demo-vit":
        from medrep.models.timm_adapter import TimmEncoder

        return TimmEncoder(module, DEMO_PREPROCESSING, name=name, class_names=CLASSES, source=source)
    return ModuleEncoder(
        module, DEMO_PREPROCESSING, name=name, embed_fn=lambda m, x: m.forward_features(x), head=module.head,
        default_pool="mean", default_layer="features.3", class_names=CLASSES, source=source,
        owns_module=True,
    )
