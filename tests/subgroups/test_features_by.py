"""`medrep features --by site,sex` on attributed phantoms: the positive and the negative case end to end."""
from __future__ import annotations

import json

import pytest

from medrep.cli import main

DATA = "demo?attributes=site,sex&n_train=600&n_val=0&n_test=300"


@pytest.mark.slow
def test_features_by_site_and_sex_on_demo_cnn(tmp_path, capsys):
    out = tmp_path / "by"
    rc = main(["features", "--model", "demo-cnn", "--data", DATA, "--by", "site,sex", "--projection", "none",
               "--shots", "1", "--draws", "2", "--n-boot", "200", "--permutations", "100", "--out", str(out), "--quiet"])
    assert rc == 0
    d = json.loads((out / "results.json").read_text())
    sub = d["subgroups"]
    for attr, names in (("site", {"A", "B"}), ("sex", {"female", "male"})):
        a = sub[attr]
        assert set(a["groups"]) == names
        for g in a["groups"].values():
            fig = g["figures"]["demo-cnn/linear_probe_accuracy"]
            assert g["n"] == fig["n"] and fig["low"] <= fig["value"] <= fig["high"] and not g["too_small"]
        assert set(a["gap"]) == set(a["gap_p"]) == {"demo-cnn/knn_accuracy", "demo-cnn/linear_probe_accuracy",
                                                    "demo-cnn/linear_probe_auc"}
        sep = a["separability"]["demo-cnn"]
        assert {"auroc", "p_value", "ks"} <= set(sep) and sep["ks_tests"] == 8  # 5 PCA modes + 3 class scores
        assert "flagged" in a["shortcut"]["demo-cnn"]
    site, sex = sub["site"], sub["sex"]
    # scanner B is readable from the embeddings, costs accuracy, and the probe leans on it
    assert site["separability"]["demo-cnn"]["auroc"]["low"] > 0.9 and site["separability"]["demo-cnn"]["p_value"] < 0.05
    assert site["shortcut"]["demo-cnn"]["flagged"]
    assert site["gap_p"]["demo-cnn/linear_probe_accuracy"] < 0.05
    assert site["worst"]["demo-cnn/linear_probe_accuracy"] == "B"
    # sex is random: not readable, no shortcut, no gap beyond chance
    auroc = sex["separability"]["demo-cnn"]["auroc"]
    assert auroc["low"] < 0.5 < auroc["high"]
    assert not sex["shortcut"]["demo-cnn"]["flagged"]
    assert sex["gap_p"]["demo-cnn/linear_probe_accuracy"] > 0.05
    assert sex["separability"]["demo-cnn"]["ks_significant"] == 0
    # the group sizes add up to the test split, and the CSVs / forest plot exist
    assert sum(g["n"] for g in site["groups"].values()) == 300
    assert (out / "subgroups.csv").exists() and (out / "separability.csv").exists() and (out / "forest_demo-cnn.png").exists()
    assert "likely shortcut" in capsys.readouterr().out


def test_by_an_attribute_the_data_lacks_is_a_one_line_error(tmp_path, capsys):
    rc = main(["features", "--model", "demo-cnn", "--data", "demo?n_train=30&n_val=0&n_test=20&size=32", "--by", "sex",
               "--out", str(tmp_path / "x"), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--by: the data has no attribute 'sex'" in err and "Traceback" not in err
    assert main(["features", "--model", "demo-cnn", "--data", "demo?attributes=sex&n_train=30&n_val=0&n_test=20&size=32",
                 "--by", "sex,sex", "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "listed twice" in capsys.readouterr().err
