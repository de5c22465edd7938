"""`--by` on attack and explain: per-item results broken down by subgroup, matched to the data by item id."""
from __future__ import annotations

import json

import numpy as np
import pytest

from medrep.cli import main
from medrep.data import load_dataset

DATA = "demo?attributes=site,sex&n_train=40&n_val=0&n_test=40&size=32"


@pytest.mark.slow
def test_attack_and_explain_by_site(tmp_path):
    out = tmp_path / "attack"
    assert main(["attack", "--model", "demo-cnn", "--data", DATA, "--limit", "24", "--steps", "1", "--eps", "8/255",
                 "--noise-draws", "1", "--by", "site", "--min-group-size", "5", "--out", str(out), "--quiet"]) == 0
    d = json.loads((out / "results.json").read_text())
    site = d["subgroups"]["site"]
    assert set(site["gap"]) == {"clean_accuracy", "attacked_accuracy at ε = 8/255"}
    # recompute one subgroup's clean accuracy from the per-pair ids and the data's attributes
    test = load_dataset(DATA).split("test")
    attr = dict(zip(test.ids, test.attribute_values("site")))
    rows = _csv(out / "per_item_eps8-255.csv")
    groups = np.array([attr[r["source_id"]] for r in rows])
    clean = np.array([float(r[f"{d['primary_classifier']}_clean_pred"]) == float(r["label"]) for r in rows])
    attacked = np.array([float(r[f"{d['primary_classifier']}_attacked_pred"]) == float(r["label"]) for r in rows])
    for g in ("A", "B"):
        figures = site["groups"][g]["figures"]
        assert site["groups"][g]["n"] == int((groups == g).sum())
        assert figures["clean_accuracy"]["value"] == pytest.approx(clean[groups == g].mean())
        assert figures["attacked_accuracy at ε = 8/255"]["value"] == pytest.approx(attacked[groups == g].mean())
    assert (out / "subgroups.csv").exists()

    out = tmp_path / "explain"
    assert main(["explain", "--model", "demo-cnn", "--data", DATA, "--limit", "16", "--methods", "gradcam",
                 "--metrics", "pointing", "--by", "site", "--min-group-size", "3", "--out", str(out), "--quiet"]) == 0
    d = json.loads((out / "results.json").read_text())
    site = d["subgroups"]["site"]
    assert "gradcam/pointing" in site["gap"]
    ids = d["ids"]
    groups = np.array([attr[i] for i in ids])
    rows = {r["id"]: r for r in _csv(out / "per_image_scores.csv") if r["method"] == "gradcam"}
    hits = np.array([float(rows[i]["pointing"]) for i in ids])
    for g in ("A", "B"):
        if (groups == g).any():
            assert site["groups"][g]["figures"]["gradcam/pointing"]["value"] == pytest.approx(hits[groups == g].mean())


def _csv(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))
