"""Helpers shared by the data-source tests (imported as a plain module)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image


def save_png(path: Path | bytes, array: np.ndarray) -> Path | bytes:
    p = os.fsdecode(path) if isinstance(path, bytes) else path
    Path(p).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(p, format="PNG")
    return path


def ramp(h: int, w: int, seed: int) -> np.ndarray:
    """A distinct, deterministic 8-bit grayscale image per seed."""
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
