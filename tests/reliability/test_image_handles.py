"""An image that fails to decode does not leave its file open: the error (and its traceback, which a caller
may keep, as --skip-bad's log or a test's ``raises`` does) holds no open file."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medrep.data.images import read_image, read_mask
from medrep.errors import BadInputError

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd to list open files")


def _open_files() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return out


def _truncated(path: Path, fmt: str) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, format=fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("fmt, reader", [("PNG", read_image), ("JPEG", read_image), ("PNG", read_mask)])
def test_a_damaged_image_is_closed_when_its_error_is_raised(tmp_path, fmt, reader):
    path = _truncated(tmp_path / f"cut.{fmt.lower()}", fmt)
    with pytest.raises(BadInputError, match="damaged image") as info:
        reader(path)
    assert info.value.where == str(path)
    assert str(path) not in _open_files()  # the traceback in ``info`` is still alive here


def test_a_good_image_is_closed_after_reading(tmp_path):
    path = tmp_path / "ok.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    assert read_image(path).shape == (1, 8, 8)
    assert str(path) not in _open_files()
