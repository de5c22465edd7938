"""Corrupt inputs end to end through `medrep extract`: without --skip-bad one clear error naming
the file (exit code 2, no traceback); with --skip-bad the bad items are listed in the manifest and the
rest are computed.

tests/data/ already checks every reader on its own (truncated PNG/JPEG, zero-size PNG, non-UTF-8 names,
CSV without a required column, NaN/inf and zero-size arrays in npz files, bad masks); these tests add
the command-level behaviour and the cases the readers' tests leave out (a 0-byte mask file, an all-zero
mask, NaN images skipped one by one in an npz file).
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medrep.features import Embeddings


def _png(path, array):
    Path(os.fsdecode(path)).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(os.fsdecode(path), format="PNG")


def _zero_width_png(path):
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 0, 8, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def _truncated(path, fmt):
    img = np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(img).save(os.fsdecode(path), format=fmt)
    data = Path(os.fsdecode(path)).read_bytes()
    Path(os.fsdecode(path)).write_bytes(data[: len(data) // 2])


def extract(cli, data, out, *extra):
    return cli.in_process(["extract", "--model", cli.TINY, "--data", str(data), "--split", "all", "--batch-size", "4",
                           "--out", str(out), "--no-cache", "--quiet", *extra])


@pytest.fixture()
def broken_tree(tmp_path):
    """Class folders: 6 good images, a truncated PNG, a truncated JPEG, a 0×8 PNG and a damaged PNG whose
    name is not UTF-8."""
    root = tmp_path / "tree"
    rng = np.random.default_rng(0)
    for i in range(6):
        _png(root / ("benign" if i % 2 else "malignant") / f"ok{i}.png", rng.integers(0, 256, (20, 24), dtype=np.uint8))
    _truncated(root / "benign" / "cut.png", "PNG")
    _truncated(root / "malignant" / "cut.jpg", "JPEG")
    _zero_width_png(root / "benign" / "empty.png")
    _truncated(os.fsencode(root / "malignant") + b"/scan\xff.png", "PNG")
    return root


def test_bad_files_stop_the_run_with_one_line_naming_the_file(cli, broken_tree, tmp_path, capsys):
    assert extract(cli, broken_tree, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("medrep extract: error: ") and str(broken_tree / "benign") in err
    assert not (tmp_path / "out" / "embeddings.parquet").exists()


def test_skip_bad_lists_bad_files_in_the_manifest_and_embeds_the_rest(cli, broken_tree, tmp_path):
    out = tmp_path / "out"
    assert extract(cli, broken_tree, out, "--skip-bad") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    skipped = {s["item"]: s["problem"] for s in manifest["skipped"]}
    assert set(skipped) == {"benign/cut.png", "malignant/cut.jpg", "benign/empty.png", "malignant/scan\\xff.png"}
    for item, problem in skipped.items():
        assert item in problem, (item, problem)  # every problem names its file
    assert "damaged image" in skipped["benign/cut.png"] and "damaged image" in skipped["malignant/cut.jpg"]
    emb = Embeddings.from_parquet(out / "embeddings.parquet")
    assert sorted(emb.ids) == sorted(f"{c}/ok{i}.png" for i, c in enumerate(["malignant", "benign"] * 3))
    assert emb.vectors.shape == (6, 192) and np.isfinite(emb.vectors).all()
    assert manifest["output"]["rows"] == 6


def test_csv_without_a_required_column_names_file_and_column(cli, tmp_path, capsys):
    _png(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    csv = tmp_path / "labels.csv"
    csv.write_text("path,diagnosis\na.png,benign\n")
    assert extract(cli, csv, tmp_path / "out", "--skip-bad") == 2  # a broken manifest is not an item to skip
    err = capsys.readouterr().err
    assert str(csv) in err and "missing required column 'label'" in err


def test_masks_zero_byte_file_is_bad_all_zero_mask_is_valid(cli, tmp_path, capsys):
    rng = np.random.default_rng(2)
    rows = ["path,label,mask"]
    for i in range(5):
        _png(tmp_path / "img" / f"{i}.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
        mask = np.zeros((16, 16), np.uint8)
        if i:  # image 0: an all-zero mask, i.e. no lesion — a valid (normal) case
            mask[2:6, 3:9] = 255
        _png(tmp_path / "mask" / f"{i}.png", mask)
        rows.append(f"img/{i}.png,{'normal' if i == 0 else 'lesion'},mask/{i}.png")
    (tmp_path / "mask" / "3.png").write_bytes(b"")  # a 0-byte mask file
    csv = tmp_path / "m.csv"
    csv.write_text("\n".join(rows) + "\n")

    assert extract(cli, csv, tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert f"{csv} row 5" in err and str(tmp_path / "mask" / "3.png") in err and "empty (0 bytes)" in err

    assert extract(cli, csv, tmp_path / "b", "--skip-bad") == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [s["item"] for s in manifest["skipped"]] == [f"{csv} row 5"]
    assert str(tmp_path / "mask" / "3.png") in manifest["skipped"][0]["problem"]
    assert Embeddings.from_parquet(tmp_path / "b" / "embeddings.parquet").ids == ["img/0.png", "img/1.png", "img/2.png", "img/4.png"]

    from medrep.data import load_dataset

    ds = load_dataset(str(csv), skip_bad=True)
    assert ds.has_masks and not ds[0].mask.any() and ds[1].mask.any()


def test_npz_with_nan_and_inf_images(cli, tmp_path, capsys):
    rng = np.random.default_rng(3)
    images = rng.random((8, 16, 16)).astype(np.float32)
    images[2, 3, 4] = np.nan
    images[5, 0, 0] = np.inf
    path = tmp_path / "scans.npz"
    np.savez(path, train_images=images, train_labels=np.arange(8) % 2, test_images=np.full((3, 16, 16), 0.5, np.float32),
             test_labels=np.zeros(3, int))

    assert extract(cli, path, tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert str(path) in err and "NaN or infinite" in err

    assert extract(cli, path, tmp_path / "b", "--skip-bad", "--split", "train") == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert {s["item"]: s["problem"] for s in manifest["skipped"]} == {
        "train/000002": f"{path}: train_images[2] contains NaN or infinite values",
        "train/000005": f"{path}: train_images[5] contains NaN or infinite values"}
    emb = Embeddings.from_parquet(tmp_path / "b" / "embeddings.parquet")
    assert emb.ids == [f"train/{i:06d}" for i in (0, 1, 3, 4, 6, 7)]
    np.testing.assert_array_equal(emb.labels, [0, 1, 1, 0, 0, 1])
