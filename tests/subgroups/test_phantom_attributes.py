"""Phantoms with ?attributes=site,sex: the default images and cache key stay exactly as they were; scanner B
changes the image, not the lesion; prevalence differs between scanners; sex has no effect."""
from __future__ import annotations

import hashlib
from dataclasses import asdict

import numpy as np
import pytest

from medrep.data import load_dataset
from medrep.data.phantoms import GENERATOR_VERSION, PhantomConfig, generate_split
from medrep.errors import MedrepError
from medrep.io import digest_json


def test_default_phantoms_are_byte_identical_to_before_attributes_existed():
    # digests taken from the generator before attributes were added
    g = generate_split(PhantomConfig(n_train=40, n_val=0, n_test=0, size=32, seed=3), "train")
    assert hashlib.sha256(g["images"].tobytes()).hexdigest() == "5b3a8cfee5b9c7e171e93d8789bb16a7d637966da5b344acbdb45372db3a53a0"
    assert not any(k.startswith("attr_") for k in g)
    # the cache key (and so every embedding cache key) of the default phantoms
    config = asdict(PhantomConfig())
    del config["attributes"]
    assert digest_json({"config": config, "version": GENERATOR_VERSION}) == "33f995220fa09f38b7c502471cf8cb074221e81c"


def test_site_changes_scanner_b_images_only_and_keeps_labels_and_masks():
    base = PhantomConfig(n_train=300, n_val=0, n_test=0, size=32, seed=1)
    plain = generate_split(base, "train")
    attr = generate_split(PhantomConfig(**{**asdict(base), "attributes": ("site", "sex")}), "train")
    np.testing.assert_array_equal(plain["labels"], attr["labels"])
    np.testing.assert_array_equal(plain["masks"], attr["masks"])
    site, sex = attr["attr_site"], attr["attr_sex"]
    changed = (plain["images"] != attr["images"]).reshape(300, -1).any(axis=1)
    assert not changed[site == "A"].any() and changed[site == "B"].all()
    # scanner B sees more malignant cases than normal ones (the shortcut); sex is independent of the class
    share_b = [float((site[attr["labels"] == c] == "B").mean()) for c in range(3)]
    assert share_b[0] < 0.35 < 0.65 < share_b[2]
    male = [float((sex[attr["labels"] == c] == "male").mean()) for c in range(3)]
    assert all(0.35 < m < 0.65 for m in male)
    # scanner B: lower contrast, more high-frequency noise
    img = attr["images"][:, 0].astype(float)
    hf = np.abs(np.diff(img, axis=2)).mean(axis=(1, 2))
    assert hf[site == "B"].mean() > 1.5 * hf[site == "A"].mean()


def test_sex_alone_leaves_the_images_untouched():
    base = dict(n_train=60, n_val=0, n_test=0, size=32, seed=2)
    plain = generate_split(PhantomConfig(**base), "train")
    sexed = generate_split(PhantomConfig(**base, attributes=("sex",)), "train")
    assert plain["images"].tobytes() == sexed["images"].tobytes()
    assert set(sexed["attr_sex"]) == {"female", "male"}


def test_data_spec_carries_attributes_through_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDREP_CACHE", str(tmp_path))
    ds = load_dataset("demo?attributes=sex,site&n_train=30&n_val=0&n_test=20&size=32")
    assert ds.attribute_names == ["site", "sex"]
    test = ds.split("test")
    assert len(test.attribute_values("site")) == 20 and test[0].attributes.keys() == {"site", "sex"}
    assert load_dataset("demo?n_train=30&n_val=0&n_test=20&size=32").attribute_names == []
    with pytest.raises(MedrepError, match="unknown phantom attribute 'race'"):
        load_dataset("demo?attributes=race&n_train=30&n_val=0&n_test=20&size=32")
