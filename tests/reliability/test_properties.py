"""Property-based checks (hypothesis).

Readers: random bytes, and valid files with random damage, written as .png / .jpg / .dcm / mask files
either decode to a valid image or raise a MedrepError naming the file — never anything else.
Metrics: pointing game, top-k IoU and relevance mass stay in [0, 1] for any finite map and any mask
(empty ones included); linear CKA stays in [0, 1] for any finite, non-constant pair of spaces.
"""
from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from medrep.data.images import read_image, read_mask, show_path
from medrep.errors import MedrepError

# MEDREP_FUZZ_EXAMPLES=2000 for a deeper hunt; the suite keeps it small
SETTINGS = settings(max_examples=int(os.environ.get("MEDREP_FUZZ_EXAMPLES", 40)), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# -- valid seed files --------------------------------------------------------------------------------
def _pil_bytes(array: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _seed_files() -> dict[str, tuple[str, bytes]]:
    from pydicom.data import get_testdata_file

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (12, 10), dtype=np.uint8)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    pal = Image.fromarray(gray).convert("P")
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    seeds = {
        "png-gray": (".png", _pil_bytes(gray, "PNG")),
        "png-rgb": (".png", _pil_bytes(rgb, "PNG")),
        "png-16bit": (".png", _pil_bytes(gray.astype(np.uint16) * 257, "PNG")),
        "png-palette": (".png", buf.getvalue()),
        "jpg-rgb": (".jpg", _pil_bytes(rgb, "JPEG", quality=90)),
        "jpg-gray-progressive": (".jpg", _pil_bytes(gray, "JPEG", progressive=True)),
    }
    for name in ("MR_small.dcm", "CT_small.dcm", "SC_rgb_small_odd.dcm", "MR_small_RLE.dcm"):
        with open(get_testdata_file(name), "rb") as f:
            seeds[f"dcm-{name}"] = (".dcm", f.read())
    return seeds


SEEDS = _seed_files()
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff\xe0", ".dcm": b"\0" * 128 + b"DICM"}


def _check_image(path) -> None:
    """Decodes to float32 C×H×W in [0, 1], or raises a MedrepError that names the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = read_image(path)
    except MedrepError as err:
        assert show_path(path) in str(err), str(err)
        return
    assert img.dtype == torch.float32 and img.ndim == 3 and img.shape[0] in (1, 3) and img.numel() > 0
    assert torch.isfinite(img).all() and img.min() >= 0 and img.max() <= 1


def _check_mask(path) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mask = read_mask(path)
    except MedrepError as err:
        assert show_path(path) in str(err), str(err)
        return
    assert mask.dtype == torch.bool and mask.ndim == 2 and mask.numel() > 0


@st.composite
def damaged(draw, seed_names=tuple(SEEDS)):
    """A seed file with 1–4 random edits (byte flips, truncation, inserted or overwritten runs).
    Edits favour the first 2 kB, where headers live."""
    name = draw(st.sampled_from(seed_names))
    suffix, data = SEEDS[name]
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        head = min(len(data), 2048)
        pos = draw(st.one_of(st.integers(0, head - 1), st.integers(0, len(data) - 1)))
        op = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite"]))
        if op == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            run = draw(st.binary(min_size=1, max_size=16))
            data[pos:pos + len(run)] = run
    return name, suffix, bytes(data)


@SETTINGS
@given(case=damaged())
def test_damaged_image_files_decode_or_name_the_file(tmp_path, case):
    name, suffix, data = case
    path = tmp_path / f"damaged-{name}{suffix}"
    path.write_bytes(data)
    _check_image(path)


@SETTINGS
@given(suffix=st.sampled_from([".png", ".jpg", ".dcm"]), with_magic=st.booleans(), body=st.binary(max_size=600))
def test_random_bytes_decode_or_name_the_file(tmp_path, suffix, with_magic, body):
    path = tmp_path / f"random{suffix}"
    path.write_bytes((MAGIC[suffix] if with_magic else b"") + body)
    _check_image(path)


@SETTINGS
@given(case=damaged(tuple(n for n in SEEDS if n.startswith("png"))), npy=st.binary(max_size=300))
def test_damaged_mask_files_read_or_name_the_file(tmp_path, case, npy):
    _, _, data = case
    (tmp_path / "mask.png").write_bytes(data)
    _check_mask(tmp_path / "mask.png")
    buf = io.BytesIO()
    np.save(buf, np.zeros((6, 5), np.uint8))
    (tmp_path / "mask.npy").write_bytes(buf.getvalue()[:10] + npy)
    _check_mask(tmp_path / "mask.npy")


# -- metrics -------------------------------------------------------------------------------------------
@st.composite
def maps_and_masks(draw):
    b, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    maps = draw(arrays(np.float32, (b, h, w), elements=st.floats(-1e6, 1e6, width=32)))
    kind = draw(st.sampled_from(["random", "empty", "full"]))
    if kind == "random":
        masks = draw(arrays(np.bool_, (b, h, w)))
    else:
        masks = np.full((b, h, w), kind == "full")
    return torch.from_numpy(maps), torch.from_numpy(masks)


@SETTINGS
@given(mm=maps_and_masks(), percent=st.floats(0.01, 100), mode=st.sampled_from(["box", "pixel"]))
def test_localisation_scores_stay_in_unit_interval(mm, percent, mode):
    from medrep.explain.scores import iou_topk, pointing_game, relevance_mass

    maps, masks = mm
    for name, v in (("pointing", pointing_game(maps, masks)), ("iou", iou_topk(maps, masks, percent, mode)),
                    ("mass", relevance_mass(maps, masks))):
        assert v.shape == (maps.shape[0],), name
        assert torch.isfinite(v).all() and (v >= 0).all() and (v <= 1).all(), (name, v)
    assert set(pointing_game(maps, masks).tolist()) <= {0.0, 1.0}
    empty = ~masks.flatten(1).any(1)
    assert (iou_topk(maps, masks, percent, mode)[empty] == 0).all()  # nothing to find: no overlap, no NaN


@st.composite
def two_spaces(draw):
    n = draw(st.integers(4, 24))
    elements = st.floats(-1e3, 1e3, width=32)
    x = draw(arrays(np.float32, (n, draw(st.integers(1, 6))), elements=elements))
    y = draw(arrays(np.float32, (n, draw(st.integers(1, 6))), elements=elements))
    return x, y


@SETTINGS
@given(xy=two_spaces(), batch=st.integers(1, 8))
def test_linear_cka_stays_in_unit_interval(xy, batch):
    from medrep.features.similarity import linear_cka

    x, y = xy
    # a constant space has no CKA (NaN), nor one whose spread underflows float32 squares (≈1e-20 and below)
    assume(np.ptp(x, axis=0).max() > 1e-6 and np.ptp(y, axis=0).max() > 1e-6)
    v = linear_cka(x, y, batch_size=batch)
    assert 0.0 <= v <= 1.0, v
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-6)
