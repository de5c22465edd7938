"""Defaults that scale down: k, few-shot sizes and anchor counts adapt to small data (and say so) instead
of failing; data without splits gets a seeded, patient-grouped, stratified train/test split, announced in
one line and recorded in the manifest; explain's target follows the head."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from medrep.cli import main
from medrep.data.autosplit import grouped_split, with_train_test
from medrep.data.base import TensorDataset
from medrep.features.probes import adapt_k, adapt_shots

SMALL = "demo?n_train=12&n_val=0&n_test=12"  # 12 training items: k=20 used to fail


def test_k_and_shots_adapt_to_the_smallest_class():
    labels = np.array([0] * 7 + [1] * 3 + [2] * 5)
    assert adapt_k(20, labels) == (3, {"asked": 20, "used": 3,
                                       "why": "the smallest class has 3 training item(s), fewer than k=20"})
    assert adapt_k(3, labels) == (3, None)
    kept, note = adapt_shots([1, 5, 10], labels)
    assert kept == [1] and note["asked"] == [1, 5, 10] and note["used"] == [1]
    assert adapt_shots([1, 2], labels) == ([1, 2], None)


def test_features_on_twelve_training_items_runs_and_reports_the_adapted_k(tmp_path, capsys):
    from medrep.data import load_dataset

    train_labels = np.asarray(load_dataset(SMALL).split("train").labels)
    smallest = int(np.bincount(train_labels).min())
    out = tmp_path / "f"
    assert main(["features", "--model", "demo-cnn", "--data", SMALL, "--projection", "none", "--n-boot", "20",
                 "--n-permutations", "10", "--out", str(out), "--quiet"]) == 0
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["k"] == smallest < 20
    assert settings["adapted"]["k"]["asked"] == 20 and settings["adapted"]["k"]["used"] == smallest
    assert all(s <= smallest for s in settings["shots"])
    assert f"k scaled down to the data: 20 → {smallest}" in capsys.readouterr().out


def test_align_leaves_out_anchor_counts_the_data_cannot_supply(small_phantoms):
    from medrep.align.run import fit_anchor_counts, run_alignment
    from medrep.models import load_encoder

    assert fit_anchor_counts([10, 50, 500], 120) == ([10, 50], {"asked": [10, 50, 500], "used": [10, 50],
                                                                "why": "there are 120 training items"})
    assert fit_anchor_counts([500], 120)[0] == [120]
    enc = load_encoder("demo-cnn")
    res = run_alignment(enc, small_phantoms, target_encoder=enc, anchors="20,5000", n_boot=20)
    assert sorted(res.by_anchors) == [20] and any("anchor counts scaled down" in n for n in res.notes)


def _patient_data(n_patients=30, per_patient=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.integers(0, 3, n_patients), per_patient)
    patients = np.repeat([f"p{i:02d}" for i in range(n_patients)], per_patient)
    images = torch.rand(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(images, labels, ["a", "b", "c"], patients=patients)


def test_a_dataset_without_splits_is_split_by_patient_seeded_and_stratified():
    ds = _patient_data()
    train, test, by = grouped_split(ds, seed=1)
    assert by == "patient" and sorted(train + test) == list(range(len(ds)))
    p = ds.patients
    assert not set(p[train]) & set(p[test])  # no patient on both sides
    labels = np.asarray(ds.labels)
    for c in range(3):  # about 70% of each class's items in train, in whole patients (3 items)
        in_class = (labels == c).sum()
        assert abs((labels[train] == c).sum() - 0.7 * in_class) <= 3
    assert grouped_split(ds, seed=1)[:2] == (train, test) and grouped_split(ds, seed=2)[:2] != (train, test)
    split, record = with_train_test(ds, seed=1)
    assert split.splits == ["train", "test"] and len(split.split("train")) == len(train) == record["train"]
    assert record["grouped_by"] == "patient" and record["seed"] == 1
    assert with_train_test(split) == (split, None)  # data with its own splits is left alone


def _folder_without_splits(root):
    from medrep.data.phantoms import PhantomConfig, load_phantoms

    phantoms = load_phantoms(PhantomConfig(n_train=30, n_val=0, n_test=0, seed=5)).split("train")
    for i in range(len(phantoms)):
        item = phantoms[i]
        path = root / phantoms.classes[item.label] / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((item.image[0].numpy() * 255).astype(np.uint8)).save(path)
    return root


def test_attack_with_a_probe_on_a_folder_without_splits_fits_it_on_its_own_part(tmp_path, capsys):
    root = _folder_without_splits(tmp_path / "folder")
    out = tmp_path / "a"
    assert main(["attack", "--model", "demo-cnn", "--data", str(root), "--classifiers", "probe", "--attack-steps", "1",
                 "--noise-draws", "1", "--noise-sigma", "0.01", "--out", str(out), "--quiet"]) == 0
    assert sum("no splits" in line for line in capsys.readouterr().err.splitlines()) == 1
    record = json.loads((out / "manifest.json").read_text())["auto_split"]
    assert record["train"] + record["test"] == 30
    per_item = (out / "per_item_eps4.csv") if (out / "per_item_eps4.csv").exists() else next(out.glob("per_item_eps*.csv"))
    assert len(per_item.read_text().strip().splitlines()) - 1 == record["test"]  # only the test part is attacked


def test_features_on_a_folder_without_splits_splits_it_and_says_so(tmp_path, capsys):
    root = _folder_without_splits(tmp_path / "folder")
    out = tmp_path / "f"
    assert main(["features", "--model", "demo-cnn", "--data", str(root), "--projection", "none", "--n-boot", "20",
                 "--n-permutations", "10", "--k", "3", "--out", str(out), "--quiet"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "no splits" in line]
    assert len(err) == 1 and "70/30" in err[0] and "grouped by source file" in err[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["auto_split"]["grouped_by"] == "source file"
    assert manifest["auto_split"]["train"] + manifest["auto_split"]["test"] == 30


@pytest.mark.parametrize("spec, expected", [("demo-cnn", "class"), (
    "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=0", "embedding")])
def test_explain_target_follows_the_head(spec, expected, tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["explain", "--model", spec, "--data", "demo?n_train=12&n_val=0&n_test=12&size=32", "--methods",
                 "gradcam", "--metrics", "pointing", "--limit", "2", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["arguments"]["explain_target"] == expected
    assert f"explaining the {expected} score" in capsys.readouterr().err
