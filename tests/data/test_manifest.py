"""CSV manifests: columns, classes, masks, captions, splits, DICOM rows and every broken-manifest case."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from data_helpers import ramp, save_png
from pydicom.data import get_testdata_file

from medrep.data import SkipLog, SplitDataset, load_dataset
from medrep.errors import BadInputError, MedrepError, SpecError


@pytest.fixture()
def manifest_dir(tmp_path):
    for i in range(4):
        save_png(tmp_path / "img" / f"{i}.png", ramp(8, 9, i))
        m = np.zeros((8, 9), np.uint8)
        m[i : i + 2, 1:4] = 255
        save_png(tmp_path / "masks" / f"{i}.png", m)
    return tmp_path


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_with_masks_captions_and_splits(manifest_dir):
    csv = _write(
        manifest_dir / "m.csv",
        "Path,Label,Mask,Caption,Split\n"
        "img/0.png,nodule,masks/0.png,a round nodule,train\n"
        "img/1.png,clear,masks/1.png,,train\n"
        "\n"
        "img/2.png,nodule,masks/2.png,\"a nodule, lower left\",test\n"
        "img/3.png,clear,masks/3.png,nothing,val\n",
    )
    ds = load_dataset(str(csv))  # bare .csv → csv:
    assert isinstance(ds, SplitDataset) and ds.splits == ["train", "val", "test"]
    assert ds.classes == ["clear", "nodule"]
    assert ds.has_masks and ds.has_captions
    train = ds.split("train")
    assert train.ids == ["img/0.png", "img/1.png"] and train.labels.tolist() == [1, 0]
    item = ds.split("test")[0]
    assert item.caption == "a nodule, lower left" and item.label == 1
    np.testing.assert_array_equal(item.image[0].numpy(), ramp(8, 9, 2) / np.float32(255))
    assert int(item.mask.sum()) == 6 and bool(item.mask[2, 1]) and not bool(item.mask[0, 1])
    assert train[1].caption is None  # empty cell


def test_numeric_labels_sort_numerically_and_classes_option(manifest_dir):
    csv = _write(manifest_dir / "n.csv", "path,label\nimg/0.png,10\nimg/1.png,2\nimg/2.png,1\n")
    ds = load_dataset(f"csv:{csv}")
    assert ds.classes == ["1", "2", "10"] and ds.labels.tolist() == [2, 1, 0]
    fixed = load_dataset(f"csv:{csv}?classes=10,2,1,7")
    assert fixed.classes == ["10", "2", "1", "7"] and fixed.labels.tolist() == [0, 1, 2]
    with pytest.raises(BadInputError, match=r"n\.csv: row 3: label '2' is not in \?classes=10,1"):
        load_dataset(f"csv:{csv}?classes=10,1")


def test_missing_required_column_names_column_and_file(manifest_dir):
    csv = _write(manifest_dir / "nolabel.csv", "path,diagnosis\nimg/0.png,a\n")
    with pytest.raises(MedrepError, match=r"nolabel\.csv: missing required column 'label' \(found columns: path, diagnosis"):
        load_dataset(str(csv))
    csv = _write(manifest_dir / "nopath.csv", "file,label\nimg/0.png,a\n")
    with pytest.raises(MedrepError, match=r"nopath\.csv: missing required column 'path'"):
        load_dataset(str(csv))


def test_missing_file_names_row_and_path_or_is_skipped(manifest_dir):
    csv = _write(manifest_dir / "miss.csv", "path,label,mask\nimg/0.png,a,\nimg/gone.png,b,\nimg/1.png,b,masks/nomask.png\n")
    with pytest.raises(BadInputError, match=r"miss\.csv row 3: .*img/gone\.png: no such file"):
        load_dataset(str(csv))
    skipped = SkipLog()
    ds = load_dataset(str(csv), skip_bad=True, skipped=skipped)
    assert ds.ids == ["img/0.png"]
    assert [s["item"] for s in skipped.skipped] == [f"{csv} row 3", f"{csv} row 4"]
    assert "gone.png: no such file" in skipped.skipped[0]["problem"]
    assert "nomask.png: no such file" in skipped.skipped[1]["problem"]


def test_bad_rows_and_files(manifest_dir):
    with pytest.raises(BadInputError, match=r"e\.csv: row 2: empty 'label' value"):
        load_dataset(str(_write(manifest_dir / "e.csv", "path,label\nimg/0.png,\n")))
    with pytest.raises(BadInputError, match=r"d\.csv: row 3: img/0\.png is listed twice \(first at row 2\)"):
        load_dataset(str(_write(manifest_dir / "d.csv", "path,label\nimg/0.png,a\nimg/0.png,b\n")))
    with pytest.raises(BadInputError, match=r"f\.csv: row 2 has 3 fields, the header has 2"):
        load_dataset(str(_write(manifest_dir / "f.csv", "path,label\nimg/0.png,a,extra\n")))
    with pytest.raises(MedrepError, match=r"h\.csv: manifest has a header but no rows"):
        load_dataset(str(_write(manifest_dir / "h.csv", "path,label\n")))
    (manifest_dir / "latin.csv").write_bytes("path,label\nimg/0.png,l\xe9sion\n".encode("latin-1"))
    with pytest.raises(BadInputError, match=r"latin\.csv: not UTF-8 text"):
        load_dataset(str(manifest_dir / "latin.csv"))
    with pytest.raises(SpecError, match="unknown option 'sep'"):
        load_dataset(f"csv:{manifest_dir / 'd.csv'}?sep=;")


def test_mask_shape_mismatch_names_row(manifest_dir):
    save_png(manifest_dir / "masks" / "small.png", np.zeros((4, 4), np.uint8))
    csv = _write(manifest_dir / "s.csv", "path,label,mask\nimg/0.png,a,masks/small.png\nimg/1.png,a,masks/1.png\n")
    ds = load_dataset(str(csv))
    with pytest.raises(BadInputError, match=r"s\.csv row 2: .*small\.png: mask shape \(4, 4\) does not match its image's shape \(8, 9\)"):
        ds[0]
    skipped = SkipLog()
    assert load_dataset(str(csv), skip_bad=True, skipped=skipped).ids == ["img/1.png"]
    assert skipped.skipped[0]["item"] == f"{csv} row 2"


def test_manifest_pointing_at_dicom_files(tmp_path):
    (tmp_path / "d").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "d" / "ct.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "d" / "mr.dcm")
    np.save(tmp_path / "d" / "mr_mask.npy", np.zeros((64, 64), bool))
    csv = _write(tmp_path / "dcm.csv", "path,label,mask\nd/ct.dcm,ct,\nd/mr.dcm,mr,d/mr_mask.npy\n")
    ds = load_dataset(str(csv))
    assert ds.classes == ["ct", "mr"]
    assert tuple(ds[0].image.shape) == (1, 128, 128) and ds[0].mask is None
    assert tuple(ds[1].mask.shape) == (64, 64) and not ds[1].mask.any()
    assert not ds.has_masks
    direct = load_dataset(get_testdata_file("CT_small.dcm"))[0].image
    assert bool((ds[0].image == direct).all())
