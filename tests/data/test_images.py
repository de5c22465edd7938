"""read_image / read_mask against PIL and numpy, and every bad file they must refuse by name."""
from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from medrep.data.images import read_image, read_mask, show_path
from medrep.errors import BadInputError

from data_helpers import ramp, save_png


def test_grayscale_png_stays_one_channel_and_matches_pil(tmp_path):
    arr = ramp(7, 5, seed=1)
    p = save_png(tmp_path / "g.png", arr)
    img = read_image(p)
    assert img.dtype == torch.float32 and tuple(img.shape) == (1, 7, 5)
    np.testing.assert_array_equal(img[0].numpy(), np.asarray(Image.open(p), dtype=np.float32) / 255.0)


def test_rgb_rgba_and_palette_become_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 4, 3), dtype=np.uint8)
    p = save_png(tmp_path / "c.png", rgb)
    img = read_image(p)
    assert tuple(img.shape) == (3, 6, 4)
    np.testing.assert_array_equal(img.numpy().transpose(1, 2, 0), rgb.astype(np.float32) / 255)
    rgba = np.dstack([rgb, np.full((6, 4), 7, np.uint8)])
    p2 = save_png(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(read_image(p2).numpy(), img.numpy())  # alpha dropped, colour kept
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pal.save(tmp_path / "p.png")
    expected = np.asarray(pal.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_array_equal(read_image(tmp_path / "p.png").numpy(), expected)


def test_sixteen_bit_png_scaled_by_bit_depth(tmp_path):
    arr = np.array([[0, 1000, 65535], [30000, 4095, 256]], dtype=np.uint16)  # uses the full 16 bits
    p = tmp_path / "d16.png"
    Image.fromarray(arr).save(p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # uses more than 8 bits: no warning expected
        img = read_image(p)
    np.testing.assert_allclose(img[0].numpy(), arr / 65535.0, rtol=0, atol=1e-7)


def test_sixteen_bit_png_using_only_8_bit_range_warns(tmp_path):
    arr = np.array([[0, 17, 255]], dtype=np.uint16)
    p = tmp_path / "low.png"
    Image.fromarray(arr).save(p)
    with pytest.warns(UserWarning, match=r"low\.png.*only the 8-bit range"):
        img = read_image(p)
    assert float(img.max()) == pytest.approx(255 / 65535)


def test_sixteen_bit_png_with_12_bit_data_warns(tmp_path):
    arr = np.array([[0, 300, 4095]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "cr12.png")
    with pytest.warns(UserWarning, match=r"cr12\.png: 16-bit image uses only 12 bits \(max 4095\)"):
        img = read_image(tmp_path / "cr12.png")
    np.testing.assert_allclose(img[0].numpy(), arr / 65535.0, atol=1e-7)


def test_float_tiff_outside_unit_range_is_rescaled_with_warning(tmp_path):
    arr = np.array([[-100.0, 0.0], [100.0, 300.0]], dtype=np.float32)
    Image.fromarray(arr).save(tmp_path / "f.tif")
    with pytest.warns(UserWarning, match="min-max rescaled"):
        img = read_image(tmp_path / "f.tif")
    np.testing.assert_allclose(img[0].numpy(), (arr + 100) / 400)


def test_nan_in_float_tiff_is_refused(tmp_path):
    Image.fromarray(np.array([[0.1, np.nan]], dtype=np.float32)).save(tmp_path / "nan.tif")
    with pytest.raises(BadInputError, match=r"nan\.tif: image contains NaN"):
        read_image(tmp_path / "nan.tif")


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("JPEG", "jpg")])
def test_truncated_image_names_file(tmp_path, fmt, suffix):
    src = tmp_path / f"full.{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(src, format=fmt)
    data = src.read_bytes()
    bad = tmp_path / f"cut.{suffix}"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError) as err:
        read_image(bad)
    assert str(err.value).startswith(f"{bad}: ")
    assert "damaged image" in str(err.value)


def test_missing_empty_and_garbage_files(tmp_path):
    with pytest.raises(BadInputError, match=r"nope\.png: no such file"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BadInputError, match=r"empty\.png: file is empty \(0 bytes\)"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "text.png").write_bytes(b"this is not an image at all")
    with pytest.raises(BadInputError, match=r"text\.png: not a readable image"):
        read_image(tmp_path / "text.png")


def test_zero_size_png_header_is_refused(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 0, 5, 8, 0, 0, 0, 0)  # width 0
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    (tmp_path / "zero.png").write_bytes(data)
    with pytest.raises(BadInputError, match=r"zero\.png: "):
        read_image(tmp_path / "zero.png")


def test_non_utf8_file_name_is_named_printably(tmp_path):
    raw = os.fsencode(tmp_path) + b"/scan\xff\xfe.png"
    save_png(raw, ramp(4, 4, seed=3))
    assert read_image(raw).shape == (1, 4, 4)
    with open(raw, "r+b") as f:
        f.truncate(40)
    with pytest.raises(BadInputError) as err:
        read_image(raw)
    msg = str(err.value)
    assert "scan\\xff\\xfe.png" in msg
    msg.encode("utf-8")  # printable: no lone surrogates
    assert show_path(raw).endswith("scan\\xff\\xfe.png")


def test_png_mask_nonzero_is_lesion_and_shape_checked(tmp_path):
    m = np.zeros((5, 6), dtype=np.uint8)
    m[1:3, 2:5] = 1  # even value 1 (not 255) is lesion
    save_png(tmp_path / "m.png", m)
    mask = read_mask(tmp_path / "m.png", shape=(5, 6))
    assert mask.dtype == torch.bool
    np.testing.assert_array_equal(mask.numpy(), m > 0)
    with pytest.raises(BadInputError, match=r"m\.png: mask shape \(5, 6\) does not match its image's shape \(6, 5\)"):
        read_mask(tmp_path / "m.png", shape=(6, 5))


def test_rgb_mask_any_channel_counts(tmp_path):
    m = np.zeros((3, 3, 3), dtype=np.uint8)
    m[0, 0, 2] = 200
    m[2, 1, 0] = 9
    save_png(tmp_path / "rgb.png", m)
    expected = np.zeros((3, 3), dtype=bool)
    expected[0, 0] = expected[2, 1] = True
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png").numpy(), expected)


def test_npy_masks(tmp_path):
    np.save(tmp_path / "b.npy", np.eye(3, dtype=bool))
    np.testing.assert_array_equal(read_mask(tmp_path / "b.npy", (3, 3)).numpy(), np.eye(3, dtype=bool))
    np.save(tmp_path / "soft.npy", np.array([[0.2, 0.5], [0.7, 0.0]], dtype=np.float32))
    np.testing.assert_array_equal(read_mask(tmp_path / "soft.npy").numpy(), [[False, True], [True, False]])
    np.save(tmp_path / "chan.npy", np.ones((1, 2, 4), dtype=np.uint8))
    assert tuple(read_mask(tmp_path / "chan.npy").shape) == (2, 4)
    np.save(tmp_path / "empty.npy", np.zeros((3, 3), dtype=np.uint8))
    assert not read_mask(tmp_path / "empty.npy").any()  # allowed: an empty mask means "no lesion"


@pytest.mark.parametrize(
    "name,array,problem",
    [
        ("nan.npy", np.array([[0.0, np.nan]]), "NaN or infinite"),
        ("inf.npy", np.array([[0.0, np.inf]]), "NaN or infinite"),
        ("range.npy", np.array([[0.0, 3.0]]), r"must lie in \[0, 1\]"),
        ("vol.npy", np.zeros((2, 3, 4)), "2-D array"),
        ("zero.npy", np.zeros((0, 4)), "zero size"),
    ],
)
def test_bad_npy_masks(tmp_path, name, array, problem):
    np.save(tmp_path / name, array)
    with pytest.raises(BadInputError, match=re.escape(name) + ": .*" + problem):
        read_mask(tmp_path / name)


def test_pickled_npy_mask_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BadInputError, match=r"obj\.npy: cannot read mask array"):
        read_mask(tmp_path / "obj.npy")
