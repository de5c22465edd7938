"""Lesion phantoms: determinism, pixel-exact masks, balance, captions, confounder rate, modalities."""
from __future__ import annotations

import numpy as np
import pytest

from medrep.data import load_dataset
from medrep.data.phantoms import CLASSES, PhantomConfig, generate_split, load_phantoms

SMALL = dict(n_train=90, n_val=0, n_test=30, size=32)


def test_same_config_is_byte_identical_and_seed_changes_it():
    cfg = PhantomConfig(**SMALL, seed=5)
    a, b = generate_split(cfg, "train"), generate_split(cfg, "train")
    assert a["images"].tobytes() == b["images"].tobytes()
    assert a["masks"].tobytes() == b["masks"].tobytes()
    assert a["captions"] == b["captions"] and a["labels"].tolist() == b["labels"].tolist()
    c = generate_split(PhantomConfig(**SMALL, seed=6), "train")
    assert a["images"].tobytes() != c["images"].tobytes()
    # splits have their own seed streams: resizing test leaves train unchanged
    d = generate_split(PhantomConfig(**{**SMALL, "n_test": 7}, seed=5), "train")
    assert d["images"].tobytes() == a["images"].tobytes()


@pytest.mark.parametrize("modality", ["radiograph", "ultrasound"])
def test_lesion_changes_exactly_the_mask_pixels(modality):
    out = generate_split(PhantomConfig(n_train=60, n_val=0, n_test=0, size=48, seed=1, modality=modality), "train", return_background=True)
    diff = out["images"] != out["background"]
    assert diff.shape == (60, 1, 48, 48)
    lesion = out["labels"] > 0
    assert lesion.sum() > 20
    np.testing.assert_array_equal(diff[:, 0][lesion], out["masks"][lesion])
    assert not diff[~lesion].any()


def test_normal_images_have_empty_masks_and_lesions_nonempty():
    out = generate_split(PhantomConfig(**SMALL, seed=2), "train")
    areas = out["masks"].reshape(len(out["labels"]), -1).sum(1)
    assert (areas[out["labels"] == 0] == 0).all()
    assert (areas[out["labels"] > 0] > 0).all()


def test_has_lesion_agrees_with_the_masks_through_splits_and_subsets(small_phantoms):
    test = small_phantoms.split("test")
    expected = [bool(test[i].mask.any()) for i in range(len(test))]
    assert [test.has_lesion(i) for i in range(len(test))] == expected
    assert expected == (test.labels > 0).tolist()
    whole = [small_phantoms.has_lesion(i) for i in range(len(small_phantoms))]
    assert whole == [bool(small_phantoms[i].mask.any()) for i in range(len(small_phantoms))]
    sub = test.subset([3, 1])
    assert [sub.has_lesion(0), sub.has_lesion(1)] == [expected[3], expected[1]]


def test_class_balance_roughly_even():
    labels = generate_split(PhantomConfig(n_train=900, n_val=0, n_test=0, size=16, seed=3), "train")["labels"]
    counts = np.bincount(labels, minlength=3)
    sd = np.sqrt(900 * (1 / 3) * (2 / 3))
    assert np.all(np.abs(counts - 300) < 4 * sd), counts


def test_captions_name_the_class():
    out = generate_split(PhantomConfig(**SMALL, seed=4), "train")
    for label, caption in zip(out["labels"], out["captions"]):
        assert CLASSES[label] in caption
        others = [c for c in CLASSES if c != CLASSES[label]]
        assert not any(f" {o} " in f" {caption} " for o in others), caption


def _tag_visibility(size: int, n: int, rate: float = 0.8):
    out = generate_split(
        PhantomConfig(n_train=n, n_val=0, n_test=0, size=size, seed=7, confounder_rate=rate), "train", return_background=True
    )
    s = max(7, size // 6)  # the tag patch side used by the generator
    changed = (out["images"] != out["background"])[:, 0, 1 : 1 + s, size - 1 - s : size - 1].sum(axis=(1, 2))
    return out, changed


def test_confounder_rate_matches_within_sampling_error():
    rate = 0.8
    out, changed = _tag_visibility(64, 300, rate)
    tag, labels = out["has_tag"], out["labels"]
    for group, expected in ((labels == 2, rate), (labels != 2, 1 - rate)):
        n = group.sum()
        observed = tag[group].mean()
        assert abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / n), (observed, expected, n)
    # the tag is really drawn: in the top-right corner, every tagged image differs from its background
    assert (changed[tag] > 0).all() and changed[tag].mean() > 5
    assert changed[~tag].mean() < 0.5
    none = generate_split(PhantomConfig(n_train=30, n_val=0, n_test=0, size=32, seed=7), "train")
    assert not none["has_tag"].any()


@pytest.mark.parametrize("size", [32, 64])
def test_confounder_tag_visible_at_every_size(size):
    out, changed = _tag_visibility(size, 200)
    s = max(7, size // 6)
    assert (changed[out["has_tag"]] > 0).all()
    # the glyph stands out of its plate on every tagged image
    corner = out["images"][out["has_tag"], 0, 1 : 1 + s, size - 1 - s : size - 1].reshape(int(out["has_tag"].sum()), -1)
    assert (corner.max(1) >= 200).all() and (np.median(corner, 1) <= 0.1 * 255).all()


def test_endoscopy_is_three_channel_and_registry_options():
    out = generate_split(PhantomConfig(n_train=6, n_val=0, n_test=0, size=32, modality="endoscopy"), "train")
    assert out["images"].shape == (6, 3, 32, 32)
    ds = load_dataset("demo?n_train=12&n_val=0&n_test=6&size=32&modality=endoscopy&seed=1")
    assert ds.splits == ["train", "test"] and ds.has_masks and ds.has_captions
    item = ds[0]
    assert tuple(item.image.shape) == (3, 32, 32) and 0 <= float(item.image.min()) and float(item.image.max()) <= 1


def test_cached_phantoms_equal_fresh_generation():
    cfg = PhantomConfig(n_train=20, n_val=0, n_test=10, size=32, seed=9)
    first = load_phantoms(cfg)
    again = load_phantoms(cfg)  # from the on-disk cache
    fresh = generate_split(cfg, "test")
    for i in range(10):
        np.testing.assert_array_equal(again.split("test")[i].image.numpy(), fresh["images"][i] / np.float32(255))
        assert again.split("test")[i].caption == fresh["captions"][i]
    assert first.content_digest() == again.content_digest()
