"""Make torchvision importable next to a CPU build of torch.

torchvision 0.28.0 on PyPI is a CUDA build.  Against the CPU torch wheel its import fails with
``RuntimeError: operator torchvision::nms does not exist`` (its Python side registers fake kernels for
ops whose schemas live in the missing compiled library), which also breaks ``import timm``,
``import open_clip`` and transformers' vision models.  Declaring the two schemas and importing again
gives a working torchvision without its compiled ops (decoders, nms); medrep reads images with PIL.
It must run before timm / open_clip / transformers are imported, and does nothing when torchvision
loads normally.
"""
from __future__ import annotations

import sys

_PATCHED = False
_SCHEMAS = {
    "torchvision::nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "torchvision::qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def ensure_torchvision_importable() -> bool:
    """Import torchvision, repairing the CPU-torch / CUDA-torchvision mismatch. Returns True if usable."""
    global _PATCHED
    try:
        import torchvision  # noqa: F401

        return True
    except ImportError:
        return False  # not installed: timm and friends then fail with their own clear message
    except RuntimeError as err:
        if "torchvision::" not in str(err) or _PATCHED:
            raise
    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    for op, schema in _SCHEMAS.items():
        try:
            torch.library.define(op, schema)
        except RuntimeError:
            pass  # already defined (a second call, or a partially loaded library)
    _PATCHED = True
    import torchvision  # noqa: F401,F811

    return True
