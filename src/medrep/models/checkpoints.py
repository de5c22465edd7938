"""Safe loading of local weights: safetensors preferred, ``.pt/.pth`` only via ``torch.load(weights_only=True)``.

A pickle that would run code on load is refused with a clear message, never executed.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from medrep.errors import MedrepError

SAFE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def check_weights_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise MedrepError("weights file not found", where=str(p))
    if p.is_dir():
        return p
    if p.suffix.lower() not in SAFE_SUFFIXES:
        raise MedrepError(f"unsupported weights format {p.suffix!r} (use .safetensors, or .pt/.pth)", where=str(p))
    return p


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a checkpoint file, without ever executing pickled code."""
    p = check_weights_file(path)
    if p.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except Exception as err:
            raise MedrepError(f"not a valid safetensors file ({err})", where=str(p)) from err
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as err:
        # weights_only refuses any pickle that would import or call arbitrary objects.
        raise MedrepError(
            f"refused to load: not a plain tensor checkpoint ({type(err).__name__}); "
            "convert it to safetensors, medrep never unpickles code", where=str(p)
        ) from err
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "module"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise MedrepError("checkpoint holds no state dict of tensors", where=str(p))
    return {k.removeprefix("module."): v for k, v in obj.items()}
