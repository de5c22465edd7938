"""Which torch device a run uses."""
from __future__ import annotations

import torch

from medrep.errors import MedrepError, Param


def resolve_device(name: str) -> torch.device:
    """``auto`` → the GPU when there is one (CUDA, then Apple MPS), else the CPU; any other name as torch reads it."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise MedrepError(f"unknown device {name!r}", where=Param("device")) from err
