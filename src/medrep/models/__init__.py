"""Encoders: one interface over timm, Hugging Face, open_clip, plain modules and the demo models."""
from medrep.models.base import Encoder, ModuleEncoder, Preprocessing, TokenGrid
from medrep.models.registry import available_specs, load_encoder, load_text_encoder

__all__ = ["Encoder", "ModuleEncoder", "Preprocessing", "TokenGrid", "load_encoder", "load_text_encoder", "available_specs"]
