"""Reading one image or one lesion mask from disk: the single reader behind folders, CSV manifests and masks.

Images come back as float32 tensors C×H×W in [0, 1] (C = 1 for grayscale, 3 for colour); DICOM files
are handed to :mod:`medrep.data.dicom_pixels`.  Every failure is a :class:`BadInputError` naming the file.

Rules (documented here because users hit them):
- grayscale stays one channel; palette, RGBA, CMYK, LA… become RGB or L (alpha is dropped);
- 8-bit files are divided by 255, 16-bit files (PNG/TIFF ``I;16``) by 65535 — the container's bit
  depth, never the image's own maximum — and a 16-bit file that only uses 0..255 or 0..4095 triggers a warning;
- float images (TIFF ``F``) already in [0, 1] are kept; outside it they are min–max rescaled, with a warning;
- masks: PNG/TIFF/… nonzero = lesion (any colour channel); NPY bool/integer nonzero = lesion, float
  ≥ 0.5 = lesion (float values must lie in [0, 1]).  An all-zero mask is valid and means "no lesion"
  (normal cases have one); scorers that need a lesion must skip such items themselves.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from medrep.data.base import warn_if_misnormalised
from medrep.data.dicom_pixels import read_dicom_frames
from medrep.data.paths import (DICOM_SUFFIXES, IMAGE_SUFFIXES, MASK_SUFFIXES, as_path,  # noqa: F401  (re-exports)
                               check_readable, is_dicom_file, is_image_file, show_path)
from medrep.errors import BadInputError

def _to_unit(raw: np.ndarray, where: str) -> np.ndarray:
    """Raw PIL pixels → float32 in [0, 1] by the container's bit depth."""
    if raw.size == 0:
        raise BadInputError(f"image has zero size {raw.shape}", where=where)
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0
    if raw.dtype == bool:
        return raw.astype(np.float32)
    if raw.dtype.kind in "ui":
        if raw.min() < 0 or raw.max() > 65535:
            raise BadInputError(f"integer image values in [{raw.min()}, {raw.max()}] exceed the 16-bit range", where=where)
        raw16 = raw.astype(np.uint16)  # PIL's mode "I" holds 16-bit data in int32
        warn_if_misnormalised(raw16, where)
        hi = int(raw16.max())
        if 255 < hi <= 4095:  # 10/12-bit detector data in a 16-bit container: divided by 65535 it is nearly black
            warnings.warn(f"{where}: 16-bit image uses only 12 bits (max {hi}); scaled by 65535 it will look dark", stacklevel=3)
        return raw16.astype(np.float32) / 65535.0
    if raw.dtype.kind == "f":
        if not np.isfinite(raw).all():
            raise BadInputError("image contains NaN or infinite values", where=where)
        warn_if_misnormalised(raw, where)
        lo, hi = float(raw.min()), float(raw.max())
        if lo >= 0.0 and hi <= 1.0:
            return raw.astype(np.float32)
        if hi == lo:
            return np.zeros_like(raw, dtype=np.float32)
        return ((raw - lo) / (hi - lo)).astype(np.float32)
    raise BadInputError(f"unsupported pixel type {raw.dtype}", where=where)


def _open_pil(p: Path):
    """Open and fully decode with PIL; PIL decodes lazily, so ``load()`` must sit inside the try.  An image
    that fails after opening is closed before the error leaves (the error's traceback would keep it open)."""
    from PIL import Image, UnidentifiedImageError

    where = show_path(p)
    check_readable(p)
    try:
        im = Image.open(p)
    except UnidentifiedImageError:
        raise BadInputError("not a readable image (unknown or damaged format)", where=where) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadInputError(f"damaged image ({err})", where=where) from None
    try:
        im.load()
        if im.width == 0 or im.height == 0:
            raise BadInputError(f"image has zero size {im.width}×{im.height}", where=where)
    except BadInputError:
        im.close()
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        im.close()
        # Truncated PNG/JPEG data lands here ("image file is truncated", "broken data stream", …).
        raise BadInputError(f"damaged image ({err})", where=where) from None
    except BaseException:
        im.close()
        raise
    return im


def _pil_to_array(im, where: str) -> np.ndarray:
    mode = im.mode
    if mode == "1":
        im = im.convert("L")
    elif mode in ("LA", "La"):
        im = im.convert("L")
    elif mode in ("P", "PA", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    elif mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)  # byte order is resolved by numpy's view
    try:
        return np.asarray(im)
    except Exception as err:  # exotic modes PIL cannot export
        raise BadInputError(f"unsupported image mode {mode!r} ({err})", where=where) from None


def read_image(path, *, frame: int | None = None, window: tuple[float, float] | str | None = None) -> torch.Tensor:
    """One image as float32 C×H×W in [0, 1].  ``frame`` / ``window`` only apply to DICOM files."""
    p = as_path(path)
    check_readable(p)
    if is_dicom_file(p):
        return torch.from_numpy(read_dicom_frames(p, frames=[frame] if frame is not None else None, window=window)[0])
    where = show_path(p)
    with _open_pil(p) as im:
        raw = _pil_to_array(im, where)
    arr = _to_unit(raw, where)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3:
        arr = np.ascontiguousarray(arr.transpose(2, 0, 1))
    else:
        raise BadInputError(f"unexpected image array shape {raw.shape}", where=where)
    return torch.from_numpy(arr)


def read_mask(path, shape: tuple[int, int] | None = None) -> torch.Tensor:
    """A lesion mask as bool H×W; ``shape`` (H, W) is the image's, and a mismatch is an error naming both."""
    p = as_path(path)
    where = show_path(p)
    check_readable(p)
    if p.suffix.lower() == ".npy":
        try:
            raw = np.load(p, allow_pickle=False)
        except Exception as err:  # bad header, pickled object array, truncated data
            raise BadInputError(f"cannot read mask array ({err.__class__.__name__}: {err})", where=where) from None
        if raw.ndim == 3 and 1 in (raw.shape[0], raw.shape[-1]):
            raw = raw.reshape(raw.shape[1:] if raw.shape[0] == 1 else raw.shape[:-1])
        if raw.ndim != 2:
            raise BadInputError(f"mask must be a 2-D array, got shape {raw.shape}", where=where)
        if raw.dtype.kind == "f":
            if not np.isfinite(raw).all():
                raise BadInputError("mask contains NaN or infinite values", where=where)
            if raw.size and (raw.min() < 0 or raw.max() > 1):
                raise BadInputError(f"float mask values must lie in [0, 1], found [{raw.min():.3g}, {raw.max():.3g}]", where=where)
            mask = raw >= 0.5
        elif raw.dtype.kind in "uib":
            mask = raw != 0
        else:
            raise BadInputError(f"unsupported mask dtype {raw.dtype}", where=where)
    else:
        with _open_pil(p) as im:
            if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
                im = im.convert("RGB" if im.mode.startswith(("RGB", "P")) else "L")
            elif im.mode == "P":
                im = im.convert("RGB")
            raw = np.asarray(im)
        # a JPEG mask (Kvasir-SEG's) carries compression noise around 0 and 255: threshold at half range
        mask = raw >= 128 if p.suffix.lower() in (".jpg", ".jpeg") and raw.dtype == np.uint8 else raw != 0
        if mask.ndim == 3:
            mask = mask.any(axis=2)
    if mask.size == 0:
        raise BadInputError(f"mask has zero size {mask.shape}", where=where)
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise BadInputError(f"mask shape {tuple(mask.shape)} does not match its image's shape {tuple(shape)}", where=where)
    return torch.from_numpy(np.ascontiguousarray(mask))
