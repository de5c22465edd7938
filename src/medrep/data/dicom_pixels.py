"""DICOM pixel decoding (pydicom) to float32 C×H×W in [0, 1]: a leaf module (paths and errors only), used by
the image reader and by the ``dicom:`` data source (:mod:`medrep.data.dicom`).

Grayscale pipeline, in DICOM's own order: stored values → modality LUT (RescaleSlope/Intercept or a
Modality LUT Sequence) → VOI (``?window=center,width`` if given, else the file's first
WindowCenter/WindowWidth with its VOILUTFunction, else its VOI LUT Sequence, else min–max of the
frame) → [0, 1] → MONOCHROME1 inverted so that bright always means dense.  ``?window=none`` ignores the
file's window and min–max scales.  Enhanced multi-frame files (Enhanced CT/MR…) give rescale and window
per frame in their functional groups: the frame's PerFrameFunctionalGroupsSequence item wins over the
SharedFunctionalGroupsSequence, which wins over the top-level attributes.  Colour (RGB, YBR_* converted
by pydicom, PALETTE COLOR through its LUT) is divided by its bit depth; no window applies to colour.

Multi-frame files give their middle frame by default; ``?frame=N`` (0-based) picks one frame and
``?frames=all`` expands every frame into its own item (id ``<path>#frame=N``).

Privacy: only the pixel-module tags below are ever parsed (``specific_tags``), so patient attributes
(PatientName, PatientID, birth date, accession number, institution…) are never read into memory; of the
functional group sequences, which pydicom parses whole, only the Pixel Value Transformation and Frame
VOI LUT macros are kept, the rest is dropped as soon as the file is read.  Nothing else can leak into
ids, labels, captions, messages or logs.  Ids come from file paths; labels from folder names or a CSV
manifest.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from medrep.data.paths import as_path, check_readable, show_path
from medrep.errors import BadInputError, SpecError

# The only elements medrep reads from a DICOM file (plus its file meta).
PIXEL_TAGS = [
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames", "Rows", "Columns",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PixelData", "FloatPixelData",
    "DoubleFloatPixelData", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
    "RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence",
    "WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence",
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData", "SpecificCharacterSet",
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
]
# Enhanced multi-frame files keep rescale and window in their functional groups; of each group item only
# these macros are kept (the rest — frame geometry, acquisition details — is dropped right after reading).
_GROUPS = ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence")
_GROUP_MACROS = ("PixelValueTransformationSequence", "FrameVOILUTSequence")
_VOI_TAGS = ("WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _open(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    where = show_path(path)
    check_readable(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about odd values; they are not the user's problem here
            ds = pydicom.dcmread(path, specific_tags=PIXEL_TAGS)
    except InvalidDicomError:
        raise BadInputError("not a DICOM file (no DICM header)", where=where) from None
    except Exception as err:  # truncated header, bad element lengths, …
        raise BadInputError(f"corrupt DICOM ({err.__class__.__name__}: {err})", where=where) from None
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise BadInputError("DICOM has no pixel data (PixelData element missing)", where=where)
    for kw in _GROUPS:  # sequence items are parsed whole by pydicom: keep only the pixel-value macros
        for item in ds.get(kw) or []:
            for tag in [e.tag for e in item if e.keyword not in _GROUP_MACROS]:
                del item[tag]
    return ds


def _n_frames(ds, where: str) -> int:
    try:
        n = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise BadInputError(f"invalid NumberOfFrames {ds.get('NumberOfFrames')!r}", where=where) from None
    if n < 1:
        raise BadInputError(f"NumberOfFrames is {n}", where=where)
    return n


def dicom_frame_count(path) -> int:
    """Frames in a file, from its header (pixel data is not decoded)."""
    p = as_path(path)
    return _n_frames(_open(p), show_path(p))


def parse_window(value: str | None, where: str = "?window") -> tuple[float, float] | str | None:
    """``"center,width"`` → (c, w); ``"none"`` → ``"none"`` (min–max); None/"" → the file's own window."""
    if value is None or value == "" or value == "auto":
        return None
    if value.lower() == "none":
        return "none"
    try:
        c, w = (float(v) for v in value.split(","))
    except ValueError:
        raise SpecError(f"expected window=center,width (e.g. 40,400) or window=none, got {value!r}", where=where) from None
    if not w >= 1:
        raise SpecError(f"window width must be ≥ 1, got {w:g}", where=where)
    return (c, w)


def window_linear(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR window, output in [0, 1]."""
    lo = center - 0.5 - (width - 1) / 2
    hi = center - 0.5 + (width - 1) / 2
    y = ((x - (center - 0.5)) / max(width - 1, 1e-12)) + 0.5
    return np.where(x <= lo, 0.0, np.where(x > hi, 1.0, y))


def _header_window(ds, x: np.ndarray, where: str) -> np.ndarray | None:
    from pydicom.multival import MultiValue

    if "WindowCenter" in ds and "WindowWidth" in ds:
        first = lambda v: float(v[0] if isinstance(v, (MultiValue, list, tuple)) else v)  # noqa: E731
        try:
            c, w = first(ds.WindowCenter), first(ds.WindowWidth)
        except (TypeError, ValueError, IndexError):
            raise BadInputError("unreadable WindowCenter/WindowWidth", where=where) from None
        fn = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        if fn == "LINEAR_EXACT":
            if w <= 0:
                raise BadInputError(f"WindowWidth {w:g} must be > 0", where=where)
            return np.clip((x - c) / w + 0.5, 0.0, 1.0)
        if fn == "SIGMOID":
            if w <= 0:
                raise BadInputError(f"WindowWidth {w:g} must be > 0", where=where)
            return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
        if w < 1:
            raise BadInputError(f"WindowWidth {w:g} must be ≥ 1 for a LINEAR window", where=where)
        return window_linear(x, c, w)
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        from pydicom.pixels import apply_voi_lut

        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return apply_voi_lut(x, ds, index=0, prefer_lut=True).astype(np.float64) / float(2**bits - 1)
    return None


def _group_macro(ds, kw: str, needs: tuple[str, ...], k: int, n: int, where: str):
    """The first item of macro ``kw`` holding any of ``needs`` for frame ``k``: per-frame group first, then
    the shared group, else None."""
    per = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per) != n:  # which item is whose frame is unknown: an error only where the macro is there to be used
        if any(group.get(kw) for group in per):
            raise BadInputError(f"PerFrameFunctionalGroupsSequence has {len(per)} items for {n} frames", where=where)
        per = []
    shared = ds.get("SharedFunctionalGroupsSequence") or []
    for group in ([per[k]] if per else []) + list(shared[:1]):
        item = group[kw][0] if group.get(kw) else None
        if item is not None and any(t in item for t in needs):
            return item
    return None


def _frame_header(ds, k: int, n: int, where: str):
    """``ds`` with frame ``k``'s rescale and VOI window from the functional groups (enhanced CT/MR/…) in
    place of the top-level ones; per-frame values win over shared ones, which win over the top level."""
    from pydicom.dataset import Dataset

    pvt = _group_macro(ds, "PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept"), k, n, where)
    voi = _group_macro(ds, "FrameVOILUTSequence", ("WindowCenter", "VOILUTSequence"), k, n, where)
    if pvt is None and voi is None:
        return ds
    view = Dataset()  # a new dataset holding the same elements: ds itself serves every frame
    if hasattr(ds, "file_meta"):
        view.file_meta = ds.file_meta
    for elem in ds:
        if elem.keyword not in _GROUPS:
            view.add(elem)
    if pvt is not None:
        try:
            float(pvt.get("RescaleSlope", 1)), float(pvt.get("RescaleIntercept", 0))
        except (TypeError, ValueError):
            raise BadInputError("unreadable RescaleSlope/RescaleIntercept in PixelValueTransformationSequence", where=where) from None
        if "ModalityLUTSequence" in view:  # pydicom prefers a LUT over rescale: the frame's rescale must win
            del view.ModalityLUTSequence
        for kw in ("RescaleSlope", "RescaleIntercept"):  # new elements: assigning would write through to ds's own
            if kw in view:
                delattr(view, kw)
        view.RescaleSlope, view.RescaleIntercept = pvt.get("RescaleSlope", "1"), pvt.get("RescaleIntercept", "0")
    if voi is not None:  # the whole VOI (window, its function, or a LUT) comes from the one level
        for kw in _VOI_TAGS:
            if kw in view:
                delattr(view, kw)
            if kw in voi:
                view.add(voi[kw])
    return view


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return np.zeros_like(x, dtype=np.float64) if hi == lo else (x - lo) / (hi - lo)


def _decode(ds, index: int | None, where: str) -> np.ndarray:
    from pydicom.pixels import get_decoder, pixel_array

    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        compressed = ts is not None and ts.is_compressed
    except ValueError:  # pydicom: "UID is not a transfer syntax"
        raise BadInputError(f"file meta names {str(ts)!r} as its transfer syntax, which is not one", where=where) from None
    if compressed:
        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            raise BadInputError(f"pixel data uses an unsupported transfer syntax ({ts.name})", where=where) from None
        if not decoder.is_available:
            needs = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
            raise BadInputError(f"no installed decoder for {ts.name} (install one of: {needs})", where=where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pixel_array(ds, index=index)  # YBR_* is converted to RGB here (raw=False)
    except Exception as err:  # short PixelData, bad Rows/Columns/BitsAllocated, broken codestream
        raise BadInputError(f"cannot decode pixel data ({err.__class__.__name__}: {err})", where=where) from None


def _to_unit(ds, arr: np.ndarray, window, where: str) -> np.ndarray:
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    pi = str(ds.get("PhotometricInterpretation", "")).upper()
    if pi == "PALETTE COLOR":
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        rgb = apply_color_lut(arr, ds).astype(np.float64) / float(2**bits - 1)
        return np.clip(rgb, 0, 1).transpose(2, 0, 1)
    if arr.ndim == 3:  # RGB (YBR already converted by pydicom)
        bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
        return np.clip(arr.astype(np.float64) / float(2**bits - 1), 0, 1).transpose(2, 0, 1)
    if pi not in ("MONOCHROME1", "MONOCHROME2", ""):
        raise BadInputError(f"unsupported PhotometricInterpretation {pi!r} for a single-sample image", where=where)
    x = apply_modality_lut(arr, ds).astype(np.float64)
    if not np.isfinite(x).all():
        raise BadInputError("pixel data contains NaN or infinite values", where=where)
    if isinstance(window, tuple):
        y = window_linear(x, *window)
    elif window == "none":
        y = _minmax(x)
    else:
        y = _header_window(ds, x, where)
        if y is None:
            y = _minmax(x)
    if pi == "MONOCHROME1":  # 0 = white in MONOCHROME1; invert so that bright means dense everywhere
        y = 1.0 - y
    return y[None]


def read_dicom_frames(path, frames=None, window=None) -> list[np.ndarray]:
    """Decode frames of one DICOM file as float32 C×H×W arrays in [0, 1].

    ``frames``: None → the middle frame; ``"all"``; or a list of 0-based indices (None inside = middle).
    ``window``: None (file's own), ``"none"`` (min–max), or ``(center, width)``.
    """
    p = as_path(path)
    where = show_path(p)
    ds = _open(p)
    n = _n_frames(ds, where)
    wanted = list(range(n)) if frames == "all" else [n // 2 if k is None else k for k in (frames or [None])]
    out = []
    for k in wanted:
        if not 0 <= k < n:
            raise BadInputError(f"frame {k} is out of range (the file has {n} frame{'s' if n > 1 else ''})", where=where)
        arr = _decode(ds, k if n > 1 else None, where)
        if arr.size == 0:
            raise BadInputError(f"pixel data has zero size {arr.shape}", where=where)
        out.append(np.ascontiguousarray(_to_unit(_frame_header(ds, k, n, where), arr, window, where), dtype=np.float32))
    return out
