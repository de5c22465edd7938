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


def refused_pickle(folder: str | os.PathLike, err: BaseException) -> MedrepError:
    """The one-line refusal for a model folder (Hugging Face ``save_pretrained``) whose pickled weights, e.g.
    ``pytorch_model.bin``, hold more than tensors: transformers reads them weights-only and raises
    ``UnpicklingError``; this names the file instead of ending in a traceback."""
    root = Path(folder).expanduser()
    pickles = sorted(q for q in root.glob("*.bin")) if root.is_dir() else []
    where = str(pickles[0]) if len(pickles) == 1 else str(root)
    what = "" if len(pickles) < 2 else f" ({', '.join(q.name for q in pickles)})"
    return MedrepError(f"refused to load{what}: a pickled checkpoint that is not weights-only "
                       f"({type(err).__name__}); only safetensors or weights-only checkpoints are loaded, and medrep "
                       "never unpickles code (convert it to model.safetensors)", where=where)
