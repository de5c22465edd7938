"""extract, features and explain on every recipe's published layout (demo-cnn, a few tiny images each), and the
multi-label behaviour of the commands: per-finding AUROCs from features, ?finding= binary tasks for attack and
explain, a refusal naming ?finding= where one label is needed."""
from __future__ import annotations

import json

import pytest
import recipe_trees as trees

from medrep.cli import main

FEATURES = ["--projection", "none", "--n-boot", "20", "--n-permutations", "5", "--shots", "1", "--draws", "2", "--k", "3",
            "--quiet"]
EXPLAIN = ["--methods", "gradcam", "--no-baselines", "--metrics", "pointing", "--limit", "4", "--batch-size", "4",
           "--quiet"]

# recipe → (tree builder, extra spec options, features split flags, explain spec options or None when multi-label)
CASES = {
    "chexpert": (trees.chexpert, "", ["--test-split", "valid"], None),
    "mimic-cxr-jpg": (trees.mimic, "", [], None),
    "nih-cxr14": (trees.nih, "", [], "?finding=Cardiomegaly"),
    "isic": (trees.isic2020, "", [], ""),
    "aptos": (trees.aptos, "", [], ""),
    "busi": (trees.busi, "", [], ""),
    "kvasir-seg": (trees.kvasir, "", None, ""),
    "mura": (trees.mura, "", ["--test-split", "valid"], ""),
    "vindr-cxr": (trees.vindr, "", [], "?finding=Cardiomegaly"),
    "rsna-pneumonia": (trees.rsna, "", [], ""),
    "chexlocalize": (trees.chexlocalize, "", ["--train-split", "val"], "?finding=Cardiomegaly"),
}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", list(CASES))
def test_extract_features_explain_on_each_recipe(recipe, tmp_path, capsys):
    build, _, split_flags, explain_opts = CASES[recipe]
    root = build(tmp_path / "data")
    spec = f"{recipe}:{root}"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["extract", "--model", "demo-cnn", "--data", spec, "--split", "all", "--limit", "6", "--quiet",
                 "--out", str(tmp_path / "x"), *cache]) == 0
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert manifest["data"]["n"] == 6
    capsys.readouterr()
    code = main(["features", "--model", "demo-cnn", "--data", spec, *(split_flags or []), *FEATURES,
                 "--out", str(tmp_path / "f"), *cache])
    err = capsys.readouterr().err
    if split_flags is None:  # one class (every Kvasir-SEG image shows a polyp): nothing to probe
        assert code == 2 and "only one class" in err
    else:
        assert code == 0, err
        res = json.loads((tmp_path / "f" / "results.json").read_text())
        if res.get("findings"):
            assert "demo-cnn/macro_auroc" in res["metrics"]
    if explain_opts is None:
        code = main(["explain", "--model", "demo-cnn", "--data", spec, "--split", "all", *EXPLAIN,
                     "--out", str(tmp_path / "e"), *cache])
        assert code == 2 and "multi-label" in capsys.readouterr().err
        return
    assert main(["explain", "--model", "demo-cnn", "--data", spec + explain_opts, "--split", "all", *EXPLAIN,
                 "--out", str(tmp_path / "e"), *cache]) == 0
    res = json.loads((tmp_path / "e" / "results.json").read_text())
    assert res["data"]["n_scored"] >= 1
    # the recipes without masks explain every image and report localisation as not run
    assert res["localisation"]["run"] is (recipe not in ("isic", "aptos", "mura"))


def test_chexpert_features_reports_per_finding_aurocs_with_patient_intervals(tmp_path, capsys):
    root = trees.chexpert(tmp_path / "data")
    assert main(["features", "--model", "demo-cnn", "--data", f"chexpert:{root}", "--test-split", "valid", *FEATURES,
                 "--out", str(tmp_path / "f"), "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "macro AUROC" in out and "AUROC Edema" in out and "AUROC Pleural Effusion" in out
    res = json.loads((tmp_path / "f" / "results.json").read_text())
    assert res["findings"] == trees.CHEXPERT_FINDINGS
    edema = res["metrics"]["demo-cnn/auroc/Edema"]
    # valid: 8 patients × 2 views, Edema 1 / 0 alternating by patient; the interval resamples patients
    assert edema["n"] == 16 and edema["interval"] == "cluster bootstrap over patients" and edema["n_patients"] == 8
    assert res["settings"]["n_images"] == 16 and res["settings"]["n_patients"] == 8
    # Edema's bright patch: the probe separates it perfectly on these images
    assert edema["value"] == 1.0
    assert res["metrics"]["demo-cnn/auroc/Cardiomegaly"]["value"] is None  # no positive: no probe, no figure


def test_one_label_commands_refuse_multi_label_and_accept_a_finding(tmp_path, capsys):
    root = trees.chexpert(tmp_path / "data")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    attack = ["attack", "--model", "demo-cnn", "--split", "valid", "--classifiers", "probe,knn", "--attack-steps", "2",
              "--noise-draws", "1", "--noise-sigma", "0.01", "--limit", "6", "--quiet", *cache]
    assert main([*attack, "--data", f"chexpert:{root}", "--out", str(tmp_path / "a0")]) == 2
    err = capsys.readouterr().err
    assert "multi-label (14 findings" in err and "?finding=No%20Finding" in err
    code = main([*attack, "--data", f"chexpert:{root}?finding=Edema&uncertain=zeros", "--out", str(tmp_path / "a")])
    assert code == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    from medrep.data import load_dataset

    attacked = load_dataset(f"chexpert:{root}?finding=Edema&uncertain=zeros").split("valid").limit(6, seed=0)
    assert res["data"]["classes"] == ["no Edema", "Edema"]
    assert res["data"]["n_patients"] == len(set(attacked.patients.tolist())) < 6
    assert res["data"]["interval"] == "cluster bootstrap over patients"
    detector = res["results"][-1]["detector"]["by_sigma"][0]["roc_auc"]  # the noise detector's AUC too
    assert detector["interval"] == "cluster bootstrap over patients" and detector["n_patients"] == res["data"]["n_patients"]


def test_explain_on_data_without_masks_runs_faithfulness_and_sanity_and_reports_localisation_not_run(tmp_path, capsys):
    root = trees.chexpert(tmp_path / "data")
    spec = f"chexpert:{root}?finding=Edema&uncertain=zeros"
    explain = ["explain", "--model", "demo-cnn", "--data", spec, "--split", "valid", "--methods", "gradcam",
               "--deletion-steps", "4", "--limit", "4", "--batch-size", "4", "--quiet",
               "--cache-dir", str(tmp_path / "cache")]
    # CheXpert has no lesion masks (CheXlocalize is CheXpert with masks, tested above): the mask scores are
    # reported as not run, everything else runs
    assert main([*explain, "--metrics", "pointing,iou,deletion", "--sanity", "cascading", "--sanity-images", "2",
                 "--out", str(tmp_path / "e")]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "localisation (pointing, iou): not run (the data has no masks)" in out
    assert "gradcam was not scored on localisation (the data has no masks)" in out and "mask area" not in out
    res = json.loads((tmp_path / "e" / "results.json").read_text())
    assert res["localisation"] == {"run": False, "reason": "not run (the data has no masks)", "metrics": ["pointing", "iou"]}
    assert res["metric_names"] == ["deletion_auc"] and res["mask_area"] is None
    assert res["data"]["masks"] is False and res["data"]["n_scored"] == 4 and res["data"]["n_without_mask"] is None
    # every image is explained, not only those with a lesion: negatives too
    assert {"no Edema", "Edema"} == {res["data"]["classes"][c] for c in _labels(tmp_path / "e")}
    verdict = res["by_method"]["gradcam"]["verdict"]
    assert verdict["localises"] == {"answer": "not run", "metric": "auprc", "reason": "not run (the data has no masks)"}
    assert verdict["faithful"]["answer"] in ("yes", "no") and verdict["depends_on_model"]["answer"] in ("yes", "no")
    assert res["sanity"]["n_images"] == 2 and (tmp_path / "e" / "gallery.png").exists()
    deletion = res["metrics"]["gradcam"]["deletion_auc"]
    assert deletion["n"] == 4 and 0 <= deletion["low"] <= deletion["value"] <= deletion["high"] <= 1
    # a named protocol is all localisation: refused in one line
    assert main([*explain, "--protocol", "chexlocalize", "--out", str(tmp_path / "p")]) == 2
    assert "the chexlocalize protocol scores maps against lesion masks" in capsys.readouterr().err


def _labels(out_dir) -> list[int]:
    import csv

    classes = json.loads((out_dir / "results.json").read_text())["data"]["classes"]
    with open(out_dir / "per_image_scores.csv", newline="") as f:
        return sorted({classes.index(row["label"]) for row in csv.DictReader(f)})


def test_by_on_multi_label_data_is_refused_in_one_line_naming_the_finding_option(tmp_path, capsys):
    root = trees.chexpert(tmp_path / "data")
    assert main(["features", "--model", "demo-cnn", "--data", f"chexpert:{root}", "--test-split", "valid", "--by", "Sex",
                 *FEATURES, "--out", str(tmp_path / "f"), "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "--by: subgroups need one label" in err and "multi-label (14 findings)" in err and "?finding=No%20Finding" in err
    assert not (tmp_path / "f" / "results.json").exists()


def test_single_finding_features_say_their_intervals_resample_patients(tmp_path):
    root = trees.chexpert(tmp_path / "data")
    assert main(["features", "--model", "demo-cnn", "--data", f"chexpert:{root}?finding=Edema&uncertain=zeros",
                 "--test-split", "valid", *FEATURES, "--out", str(tmp_path / "f"), "--cache-dir", str(tmp_path / "cache")]) == 0
    res = json.loads((tmp_path / "f" / "results.json").read_text())
    probe = res["metrics"]["demo-cnn/linear_probe_accuracy"]
    assert probe["interval"] == "cluster bootstrap over patients" and probe["n_patients"] == 8
    assert res["settings"]["intervals"].startswith("95%: bootstrap over whole patients (kNN and probe accuracies, AUC)")
