"""`medrep attack` on the command line: the printed table and written files, the ensemble, and option errors that
name the flag before any model loads."""
from __future__ import annotations

import json

TINY = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=3"


def test_cli_attack(tmp_path, capsys):
    from medrep.cli import main

    spec = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=3"
    rc = main(["attack", "--model", spec, "--data", "demo?n_train=30&n_val=0&n_test=12&seed=3", "--limit", "6", "--eps", "2/255,4/255", "--attack-steps", "2", "--batch-size", "3",
               "--noise-draws", "2", "--noise-sigma", "0.01,0.2", "--out", str(tmp_path), "--quiet", "--cache-dir", str(tmp_path / "c")])
    assert rc == 0
    d = json.loads((tmp_path / "results.json").read_text())
    assert [s["eps_255"] for s in d["results"]] == [2.0, 4.0]
    assert (tmp_path / "manifest.json").exists() and (tmp_path / "accuracy_vs_eps.png").exists()
    out = capsys.readouterr().out
    assert "2/255" in out
    # the detector: every σ's AUC with its interval, not the best σ picked on these same test items
    assert "best" not in out and "σ=0.01" in out and "σ=0.2" in out
    for s in d["results"]:
        cells = [f"{a['value']:.3f} [{a['low']:.2f}, {a['high']:.2f}]" for a in (b["roc_auc"] for b in s["detector"]["by_sigma"])]
        assert any(line.split() == [f"{s['eps_255']:g}/255", *" ".join(cells).split()] for line in out.splitlines()), (cells, out)
    assert main(["attack", "--model", spec, "--eps", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--eps" in capsys.readouterr().err
    # an L∞ ε above the pixel range is refused before anything is loaded (the model spec is not even parsed)
    assert main(["attack", "--model", "nosuch:model", "--eps", "2", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "--eps: ε is in [0, 1] pixel units (got 2.0)" in capsys.readouterr().err
    # L2: ε = 2 is a normal budget and is shown in raw units; beyond √(C·H·W) = √(1·32·32) it is refused
    rc = main(["attack", "--model", spec, "--data", "demo?n_train=30&n_val=0&n_test=12&seed=3", "--limit", "3", "--norm", "l2",
               "--objective", "push", "--eps", "2", "--attack-steps", "1", "--noise-draws", "1", "--noise-sigma", "0.01", "--out", str(tmp_path / "l2"),
               "--quiet", "--cache-dir", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert rc == 0 and "/255" not in out and "L2 eps" in out and (tmp_path / "l2" / "per_item_eps2.csv").exists()
    rc = main(["attack", "--model", spec, "--data", "demo?n_train=30&n_val=0&n_test=12&seed=3", "--limit", "3", "--norm", "l2",
               "--eps", "33", "--out", str(tmp_path / "l2"), "--quiet"])
    assert rc == 2 and "--eps: an L2 ε cannot exceed √(C·H·W) = 32" in capsys.readouterr().err
    # option errors name the option at fault, and come before the model loads (this spec would fail to load)
    data = "demo?n_train=30&n_val=0&n_test=12&seed=3"
    for extra, message in ((["--train-split", "nosuch", "--classifiers", "probe"], "--train-split: no split 'nosuch' in"),
                           (["--train-split", "nosuch", "--attack-target", "centroid"], "--train-split: no split 'nosuch' in"),
                           (["--noise-draws", "0"], "--noise-draws: must be at least 1 (got 0)"),
                           (["--noise-sigma", "0.01,0"], "--noise-sigma: needs one or more positive σ values"),
                           (["--classifiers", "probe,svm"], "--classifiers: unknown classifier 'svm'")):
        assert main(["attack", "--model", "nosuch:model", "--data", data, *extra, "--out", str(tmp_path / "x"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and "--split:" not in err, (extra, err)
    # a headless model's "auto" classifiers (probe, kNN) need the split too: known once the model is loaded
    headless = spec.replace("num_classes=3", "num_classes=0")
    assert main(["attack", "--model", headless, "--data", data, "--train-split", "nosuch", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "--train-split: no split 'nosuch' in" in capsys.readouterr().err


def test_cli_ensemble_prints_each_attack_and_records_it(tmp_path, capsys):
    import json

    from medrep.cli import main

    out = tmp_path / "ens"
    rc = main(["attack", "--model", TINY, "--data", "demo?n_train=30&n_val=0&n_test=12&seed=3", "--limit", "4",
               "--eps", "0.0157,8/255", "--attack-steps", "3", "--attack", "ensemble", "--queries", "20", "--early-stop",
               "--objective", "ce", "--batch-size", "4", "--noise-draws", "2", "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "0.0157" in text and "4.0035/255" not in text and "8/255" in text  # ε as written
    assert "worst case per item" in text and "square" in text
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["attack"] == ["apgd", "square"] and res["config"]["criterion"] == "misclassified"
    att = res["results"][0]["attacks"]
    assert set(att["per_attack"]) == {"apgd", "square"} and sum(att["wins"].values()) + att["unbroken"] == 4
    worst = att["worst_case_attacked_accuracy"]["value"]
    assert worst <= min(v["attacked_accuracy"]["value"] for v in att["per_attack"].values())
    assert att["per_attack"]["square"]["passes"]["gradient"] == 0 and att["per_attack"]["apgd"]["passes"]["gradient"] > 0
    assert main(["attack", "--model", TINY, "--attack", "fgsm", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert main(["attack", "--model", TINY, "--attack", "square", "--queries", "0",
                 "--out", str(tmp_path / "y"), "--quiet"]) == 2
