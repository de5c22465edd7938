"""medrep: audit the representations of medical-imaging models."""
from __future__ import annotations

from medrep._compat import ensure_torchvision_importable as _ensure_torchvision

__version__ = "0.1.0"

_ensure_torchvision()

from medrep.errors import MedrepError  # noqa: E402

__all__ = ["MedrepError", "__version__"]
