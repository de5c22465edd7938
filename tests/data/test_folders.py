"""Class-per-folder trees: labels, ids, split level, masks, laziness, digests, skip-bad."""
from __future__ import annotations

import os

import numpy as np
import pytest
from data_helpers import ramp, save_png

from medrep.data import SkipLog, SplitDataset, collate, load_dataset
from medrep.data.folders import load_class_tree
from medrep.errors import BadInputError, MedrepError, SpecError


def test_class_tree_labels_ids_pixels_and_sibling_masks(class_tree):
    root, arrays = class_tree
    ds = load_dataset(str(root))  # bare directory → folder:
    assert ds.classes == ["benign", "malignant"]
    assert ds.ids == ["benign/img0.png", "benign/img1.png", "malignant/img0.png", "malignant/img1.png", "malignant/img2.png"]
    assert ds.labels.tolist() == [0, 0, 1, 1, 1]
    assert ds.has_masks and not ds.has_captions
    for item in ds:
        arr, mask = arrays[item.id]
        np.testing.assert_array_equal(item.image[0].numpy(), arr / np.float32(255))
        np.testing.assert_array_equal(item.mask.numpy(), mask)
    batch = collate([ds[0], ds[4]])
    assert tuple(batch["mask"].shape) == (2, 12, 10) and batch["label"].tolist() == [0, 1]
    assert ds.describe()["class_counts"] == {"benign": 2, "malignant": 3}


def test_masks_option_and_missing_mask_folder(class_tree, tmp_path):
    root, _ = class_tree
    os.rename(tmp_path / "tree_masks", tmp_path / "elsewhere")
    assert not load_dataset(f"folder:{root}").has_masks
    ds = load_dataset(f"folder:{root}?masks={tmp_path / 'elsewhere'}")
    assert ds.has_masks and int(ds[2].mask.sum()) == 2 * 3
    with pytest.raises(BadInputError, match=r"\?masks=.*nowhere: mask folder does not exist"):
        load_dataset(f"folder:{root}?masks={tmp_path / 'nowhere'}")
    with pytest.raises(SpecError, match="unknown option 'colour'"):
        load_dataset(f"folder:{root}?colour=1")


def test_npy_masks_in_sibling_tree_and_shape_mismatch(tmp_path):
    root = tmp_path / "t"
    save_png(root / "a" / "x.png", ramp(6, 6, 0))
    save_png(root / "b" / "y.png", ramp(6, 6, 1))
    (tmp_path / "t_masks" / "a").mkdir(parents=True)
    (tmp_path / "t_masks" / "b").mkdir(parents=True)
    np.save(tmp_path / "t_masks" / "a" / "x.npy", np.eye(6, dtype=bool))
    np.save(tmp_path / "t_masks" / "b" / "y.npy", np.ones((5, 6), dtype=np.uint8))
    ds = load_dataset(str(root))
    np.testing.assert_array_equal(ds[0].mask.numpy(), np.eye(6, dtype=bool))
    with pytest.raises(BadInputError, match=r"t_masks/b/y\.npy: mask shape \(5, 6\) does not match its image's shape \(6, 6\)"):
        ds[1]
    skipped = SkipLog()
    ds2 = load_dataset(str(root), skip_bad=True, skipped=skipped)
    assert ds2.ids == ["a/x.png"]
    assert skipped.skipped[0]["item"] == "b/y.png" and "mask shape" in skipped.skipped[0]["problem"]


def test_split_level_detected_with_shared_classes(tmp_path):
    root = tmp_path / "s"
    save_png(root / "train" / "cat" / "1.png", ramp(4, 4, 1))
    save_png(root / "train" / "dog" / "2.png", ramp(4, 4, 2))
    save_png(root / "test" / "dog" / "3.png", ramp(4, 4, 3))
    save_png(root / "test" / "eel" / "4.png", ramp(4, 4, 4))
    ds = load_dataset(str(root))
    assert isinstance(ds, SplitDataset)
    assert sorted(ds.splits) == ["test", "train"]
    assert ds.classes == ["cat", "dog", "eel"]
    assert ds.split("train").labels.tolist() == [0, 1]
    assert ds.split("test").labels.tolist() == [1, 2]
    assert ds.split("test").ids == ["test/dog/3.png", "test/eel/4.png"]
    with pytest.raises(MedrepError, match="no split 'val'"):
        ds.split("val")


def test_reading_is_lazy_and_errors_name_the_file(class_tree):
    root, _ = class_tree
    bad = root / "malignant" / "img1.png"
    bad.write_bytes(bad.read_bytes()[:30])  # truncated: building the dataset does not decode it
    ds = load_class_tree(root)
    assert len(ds) == 5
    ds[0]
    with pytest.raises(BadInputError, match=r"malignant/img1\.png: (damaged|not a readable)"):
        ds[3]
    skipped = SkipLog()
    ok = load_class_tree(root, skip_bad=True, skipped=skipped)
    assert len(ok) == 4 and "malignant/img1.png" not in ok.ids
    assert skipped.skipped == [{"item": "malignant/img1.png", "problem": skipped.skipped[0]["problem"]}]
    assert str(bad) in skipped.skipped[0]["problem"]


def test_content_digest_follows_file_bytes(class_tree):
    root, _ = class_tree
    d0 = load_dataset(str(root)).content_digest()
    assert d0 == load_dataset(str(root)).content_digest()
    p = root / "benign" / "img0.png"
    arr = ramp(12, 10, seed=0)
    arr[0, 0] ^= 1  # one pixel, one bit
    save_png(p, arr)
    assert load_dataset(str(root)).content_digest() != d0


def test_missing_and_malformed_roots(tmp_path):
    with pytest.raises(MedrepError, match=r"nothing_here: no such file or directory"):
        load_dataset(str(tmp_path / "nothing_here"))
    with pytest.raises(BadInputError, match=r"nothing_here: no such directory"):
        load_class_tree(tmp_path / "nothing_here")
    (tmp_path / "flat").mkdir()
    save_png(tmp_path / "flat" / "x.png", ramp(3, 3, 0))
    with pytest.raises(MedrepError, match=r"flat: no class folders"):
        load_class_tree(tmp_path / "flat")
    save_png(tmp_path / "flat" / "cls" / "y.png", ramp(3, 3, 1))
    with pytest.warns(UserWarning, match=r"flat: 1 image file\(s\) outside any class folder are ignored \(e\.g\. x\.png\)"):
        assert load_class_tree(tmp_path / "flat").ids == ["cls/y.png"]
    (tmp_path / "emptycls" / "a").mkdir(parents=True)
    with pytest.raises(MedrepError, match=r"emptycls: no images found"):
        load_class_tree(tmp_path / "emptycls")


def test_non_utf8_file_name_gets_a_printable_id(tmp_path):
    root = tmp_path / "u"
    (root / "a").mkdir(parents=True)
    save_png(os.fsencode(root / "a") + b"/r\xe9sum\xe9.png", ramp(3, 3, 0))
    ds = load_dataset(str(root))
    assert ds.ids == ["a/r\\xe9sum\\xe9.png"]
    ds.ids[0].encode("utf-8")
    assert tuple(ds[0].image.shape) == (1, 3, 3)


def test_has_lesion_reads_the_mask_alone(class_tree, tmp_path, monkeypatch):
    """Choosing the images to explain must not decode every image of the split (a --limit run reads few)."""
    root, arrays = class_tree
    blank = np.zeros((12, 10), dtype=np.uint8)
    save_png(root / "benign" / "img9.png", ramp(12, 10, seed=9))
    save_png(tmp_path / "tree_masks" / "benign" / "img9.png", blank)  # a lesion-free image
    ds = load_dataset(str(root))
    expected = [bool(ds[i].mask.any()) for i in range(len(ds))]
    assert expected.count(False) == 1

    import medrep.data.files as files

    def no_images(*_a, **_k):
        raise AssertionError("an image was decoded to check its mask")

    monkeypatch.setattr(files, "read_image", no_images)
    assert [ds.has_lesion(i) for i in range(len(ds))] == expected
    sub = ds.subset([4, 0, 2])
    assert [sub.has_lesion(i) for i in range(3)] == [expected[4], expected[0], expected[2]]


def test_symlinked_patient_folders_are_followed(tmp_path):
    """Patient/series folders linked into the class folders from a store are read; ids go through the link."""
    store, root = tmp_path / "store", tmp_path / "root"
    arrays = {i: ramp(5, 5, seed=i) for i in range(4)}
    for i in range(3):
        save_png(store / "p1" / f"{i}.png", arrays[i])
    save_png(root / "a" / "x.png", arrays[3])
    save_png(root / "b" / "y.png", ramp(5, 5, seed=9))
    os.symlink(store / "p1", root / "a" / "patient1")
    os.symlink(store / "p1", root / "b" / "patient1")  # the same store folder reached twice: both are read
    expected = ["a/patient1/0.png", "a/patient1/1.png", "a/patient1/2.png", "a/x.png",
                "b/patient1/0.png", "b/patient1/1.png", "b/patient1/2.png", "b/y.png"]
    ds = load_dataset(f"folder:{root}")
    assert ds.ids == expected and ds.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    np.testing.assert_array_equal(ds[1].image[0].numpy(), arrays[1] / np.float32(255))
    np.testing.assert_array_equal(ds[3].image[0].numpy(), arrays[3] / np.float32(255))
    assert load_dataset(f"folder:{root}").content_digest() == ds.content_digest()

    only_links = tmp_path / "links"
    (only_links / "c").mkdir(parents=True)
    os.symlink(store / "p1", only_links / "c" / "patient1")
    bare = load_dataset(str(only_links))  # detected as a class tree through the link
    assert bare.ids == ["c/patient1/0.png", "c/patient1/1.png", "c/patient1/2.png"]


def test_symlink_cycle_is_skipped_with_a_warning(tmp_path):
    root = tmp_path / "root"
    save_png(root / "a" / "s1" / "0.png", ramp(4, 4, 0))
    save_png(root / "b" / "1.png", ramp(4, 4, 1))
    os.symlink(root / "a", root / "a" / "s1" / "back")  # a/s1/back → a: endless through os.walk(followlinks=True)
    os.symlink(root, root / "b" / "top")  # b/top → root, above b
    with pytest.warns(UserWarning) as record:
        ds = load_dataset(f"folder:{root}")
    messages = sorted(str(w.message) for w in record if "cycle" in str(w.message))
    assert messages == [f"{root / 'a' / 's1' / 'back'}: link back to a folder above it (a cycle); skipped",
                        f"{root / 'b' / 'top'}: link back to a folder above it (a cycle); skipped"]
    assert ds.ids == ["a/s1/0.png", "b/1.png"]
