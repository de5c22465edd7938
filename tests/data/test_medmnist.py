"""MedMNIST npz files of any size, read from a local path."""
from __future__ import annotations

import numpy as np
import pytest

from medrep.data import SplitDataset, load_dataset
from medrep.errors import BadInputError, MedrepError, SpecError


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_grayscale_subset_with_class_names(tmp_path):
    rng = np.random.default_rng(0)
    tr = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    te = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    path = _npz(tmp_path / "pneumoniamnist.npz", train_images=tr, train_labels=np.array([[0], [1], [1], [0], [1]]),
                test_images=te, test_labels=np.array([[1], [0], [0]]))
    ds = load_dataset(f"medmnist:{path}?classes=normal,pneumonia")
    assert isinstance(ds, SplitDataset) and ds.splits == ["train", "test"]
    assert ds.classes == ["normal", "pneumonia"] and len(ds) == 8
    assert ds.split("train").labels.tolist() == [0, 1, 1, 0, 1]
    item = ds.split("test")[2]
    assert item.id == "test/000002" and item.label == 0
    np.testing.assert_array_equal(item.image.numpy(), te[2][None] / np.float32(255))
    assert load_dataset(path).classes == ["class_0", "class_1"]  # bare .npz is detected


def test_rgb_images_channel_first_and_flat_labels(tmp_path):
    imgs = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)  # not an official size
    path = _npz(tmp_path / "derma.npz", val_images=imgs, val_labels=np.array([0, 3, 2, 3]))
    ds = load_dataset(f"medmnist:{path}")
    assert ds.classes == ["class_0", "class_1", "class_2", "class_3"]
    img = ds[1].image
    assert tuple(img.shape) == (3, 32, 32)
    np.testing.assert_array_equal(img.numpy(), imgs[1].transpose(2, 0, 1) / np.float32(255))


def test_multilabel_needs_label_column(tmp_path):
    labels = np.array([[0, 1, 0], [1, 1, 0]])
    path = _npz(tmp_path / "chest.npz", train_images=np.zeros((2, 8, 8), np.uint8), train_labels=labels)
    with pytest.raises(BadInputError, match=r"chest\.npz: train_labels is multi-label \(3 columns\); pick one with \?label_column=k"):
        load_dataset(f"medmnist:{path}")
    assert load_dataset(f"medmnist:{path}?label_column=0").labels.tolist() == [0, 1]
    with pytest.raises(SpecError, match=r"label_column=3 is out of range"):
        load_dataset(f"medmnist:{path}?label_column=3")


def test_content_digest_depends_on_file_and_options(tmp_path):
    imgs = np.zeros((2, 8, 8), np.uint8)
    a = _npz(tmp_path / "a.npz", test_images=imgs, test_labels=np.array([[0, 1], [1, 0]]))
    d0 = load_dataset(f"medmnist:{a}?label_column=0").content_digest()
    assert d0 == load_dataset(f"medmnist:{a}?label_column=0").content_digest()
    assert d0 != load_dataset(f"medmnist:{a}?label_column=1").content_digest()
    imgs[0, 0, 0] = 1
    _npz(tmp_path / "a.npz", test_images=imgs, test_labels=np.array([[0, 1], [1, 0]]))
    assert d0 != load_dataset(f"medmnist:{a}?label_column=0").content_digest()


@pytest.mark.parametrize(
    "arrays,problem",
    [
        ({"x": np.zeros(3)}, "no train_images / val_images / test_images"),
        ({"train_images": np.zeros((2, 4, 4), np.uint8)}, "train_images has no matching train_labels"),
        ({"train_images": np.zeros((2, 4, 4), np.uint8), "train_labels": np.zeros(3, int)}, "3 labels for 2 images"),
        ({"train_images": np.full((1, 4, 4), np.nan, np.float32), "train_labels": np.zeros(1, int)}, "NaN or infinite"),
        ({"train_images": np.zeros((1, 4, 4, 4, 1), np.uint8), "train_labels": np.zeros(1, int)}, "expected N×H×W"),
        ({"train_images": np.zeros((1, 0, 4), np.uint8), "train_labels": np.zeros(1, int)}, "zero-size images"),
        ({"train_images": np.zeros((1, 4, 4), np.uint8), "train_labels": np.array([-1])}, "negative labels"),
    ],
)
def test_bad_npz_contents_are_named(tmp_path, arrays, problem):
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(MedrepError, match=r"bad\.npz: .*" + problem.replace("/", ".").replace("(", r"\(")):
        load_dataset(f"medmnist:{path}")


def test_unreadable_npz(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(BadInputError, match=r"junk\.npz: cannot read npz"):
        load_dataset(f"medmnist:{tmp_path / 'junk.npz'}")
    with pytest.raises(BadInputError, match=r"absent\.npz: no such file"):
        load_dataset(f"medmnist:{tmp_path / 'absent.npz'}")


def test_16bit_images_scaled_by_container_not_per_split_maximum(tmp_path):
    """A raw value means the same intensity in every split: uint16 is divided by 65535, as images.py does."""
    tr = np.full((2, 8, 8), 200, np.uint16)
    tr[0, 0, 0] = 1000  # only train goes above 255
    te = np.full((2, 8, 8), 200, np.uint16)
    path = _npz(tmp_path / "mm16.npz", train_images=tr, train_labels=[0, 1], test_images=te, test_labels=[0, 1])
    with pytest.warns(UserWarning) as record:
        ds = load_dataset(f"medmnist:{path}")
    messages = [str(w.message) for w in record]
    assert any("mm16.npz:train_images: 16-bit image uses only 12 bits (max 1000)" in m for m in messages)
    assert any("mm16.npz:test_images: 16-bit image uses only the 8-bit range (max 200)" in m for m in messages)
    assert float(ds.split("train")[0].image[0, 1, 1]) == pytest.approx(200 / 65535)
    assert float(ds.split("test")[0].image[0, 1, 1]) == pytest.approx(200 / 65535)
    assert float(ds.split("train")[0].image[0, 0, 0]) == pytest.approx(1000 / 65535)


@pytest.mark.parametrize("dtype,value,problem", [(np.int16, -5, r"int16 in \[-5, 0\]"), (np.int64, 70000, r"int64 in \[0, 70000\]")])
def test_integer_images_outside_16_bits_are_named(tmp_path, dtype, value, problem):
    imgs = np.zeros((1, 4, 4), dtype)
    imgs[0, 0, 0] = value
    path = _npz(tmp_path / "wide.npz", train_images=imgs, train_labels=[0])
    with pytest.raises(BadInputError, match=r"wide\.npz: train_images is " + problem + ", outside the 16-bit range"):
        load_dataset(f"medmnist:{path}")
