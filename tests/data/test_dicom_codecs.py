"""Compressed DICOM (JPEG-LS, 12-bit JPEG Extended, JPEG Lossless, JPEG 2000 incl. YBR_RCT) through the DICOM
extra's codecs (pylibjpeg + libjpeg + openjpeg): every compressed file of pydicom's own local test data that
pydicom's pixel pipeline decodes, medrep decodes to the same pixels; lossless files equal their uncompressed
originals; files pydicom cannot decode are one-line errors.  Only the test files shipped with the installed
pydicom are used (no download)."""
from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files

from medrep.data.dicom import read_dicom_frames
from medrep.errors import BadInputError


def _compressed_files() -> list[str]:
    out = []
    for f in get_testdata_files():
        try:
            ts = pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID
        except Exception:  # not DICOM, or no file meta: not what this test is about
            continue
        if ts.is_compressed and "RLE" not in ts.name and "Deflate" not in ts.name:
            out.append(f)
    return sorted(out)


def _reference(path: str) -> np.ndarray | None:
    """pydicom's own decode (middle frame), brought to [0, 1] as medrep documents it for window=none."""
    from pydicom.pixels import apply_modality_lut

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        try:
            arr = ds.pixel_array
        except Exception:
            return None
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if n > 1:
        arr = arr[n // 2]
    if arr.ndim == 3:  # RGB (pydicom converts YBR)
        return (arr.astype(np.float64) / (2 ** int(ds.BitsStored) - 1)).transpose(2, 0, 1)
    x = apply_modality_lut(arr, ds).astype(np.float64)
    y = (x - x.min()) / (x.max() - x.min()) if x.max() > x.min() else np.zeros_like(x)
    return (1 - y if ds.PhotometricInterpretation == "MONOCHROME1" else y)[None]


FILES = _compressed_files()


def test_the_codecs_cover_the_compressions_of_real_archives():
    names = {f.rsplit("/", 1)[-1] for f in FILES}
    # JPEG-LS lossless and near-lossless, 12-bit JPEG Extended, JPEG 2000 (lossy, lossless, YBR_RCT colour)
    assert {"MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_16.dcm", "JPGExtended.dcm", "JPEG2000.dcm",
            "MR_small_jp2klossless.dcm", "GDCMJ2K_TextGBR.dcm", "SC_rgb_jpeg_gdcm.dcm"} <= names
    decoded = [f for f in FILES if _reference(f) is not None]
    assert len(decoded) >= 28  # of the 31 local compressed files; the other 3 are broken on purpose


@pytest.mark.parametrize("path", FILES, ids=lambda f: f.rsplit("/", 1)[-1])
def test_medrep_decodes_what_pydicom_decodes(path):
    ref = _reference(path)
    if ref is None:  # broken on purpose (pydicom's own tests expect it to fail): a one-line error for us too
        with pytest.raises(BadInputError, match="cannot decode pixel data|no pixel data|Pixel Data"):
            read_dicom_frames(path, window="none")
        return
    got = read_dicom_frames(path, window="none")[0]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-6)


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"])
def test_lossless_files_equal_their_uncompressed_original(name):
    original = read_dicom_frames(get_testdata_file("MR_small.dcm"), window="none")[0]
    np.testing.assert_array_equal(read_dicom_frames(get_testdata_file(name), window="none")[0], original)
