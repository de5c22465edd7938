"""`medrep features` and `medrep overlay` from the command line on a few phantoms."""
import json

from medrep.cli import main

TINY = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=3"


def test_features_command_with_overlay(tmp_path, capsys):
    out = tmp_path / "f"
    rc = main(["features", "--model", TINY, "--layer", "blocks.0", "--layer", "blocks.1", "--pool", "cls",
               "--data", "demo?n_train=30&n_val=0&n_test=24&size=32", "--limit", "36", "--shots", "1", "--draws", "2", "--n-boot", "10",
               "--n-permutations", "20", "--k", "3", "--mutual-k", "3", "--projection", "none",
               "--overlay", "--words", "malignant", "--font-size", "0.3", "--out", str(out), "--quiet"])
    assert rc == 0
    d = json.loads((out / "results.json").read_text())
    assert len(d["models"]) == 2 and len(d["pairs"]) == 1
    ov = json.loads((out / "overlay" / "results.json").read_text())
    (model,) = ov["models"].values()
    assert "probe_to_target_rate" in model["words"]["malignant"]
    assert (out / "manifest.json").exists() and (out / "overlay" / "overlay_examples.png").exists()
    assert "kNN acc" in capsys.readouterr().out


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["features", "--model", "demo-cnn", "--model", "demo-cnn", "--out", str(tmp_path), "--quiet"]) == 2
    assert "--model: listed more than once: demo-cnn" in capsys.readouterr().err
    assert main(["overlay", "--model", TINY, "--position", "middle", "--data", "demo?n_train=30&n_val=0&n_test=24&size=32", "--out", str(tmp_path), "--quiet"]) == 2
    assert "--position" in capsys.readouterr().err
    assert main(["overlay", "--model", TINY, "--text-aligned", "--data", "demo?n_train=30&n_val=0&n_test=24&size=32",
                 "--out", str(tmp_path), "--quiet"]) == 2
    assert "--text-aligned: needs --text " in capsys.readouterr().err


def test_one_model_and_split_flag(tmp_path, capsys):
    data = "demo?n_train=30&n_val=18&n_test=24&size=32"
    out = tmp_path / "one"
    rc = main(["features", "--model", TINY, "--data", data, "--split", "val", "--shots", "1", "--draws", "2",
               "--n-boot", "10", "--n-permutations", "10", "--k", "3", "--projection", "none", "--out", str(out), "--quiet"])
    assert rc == 0
    d = json.loads((out / "results.json").read_text())
    (model,) = d["models"].values()
    assert d["settings"]["test_split"] == "val" and model["n_test"] == 18 and model["n_train"] == 30
    assert json.loads((out / "manifest.json").read_text())["arguments"]["test_split"] == "val"
    # one model: no pairs, and the message lists only what was written
    assert not (out / "pairs.csv").exists() and d["pairs"] == []
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"wrote results.json, models.csv, centroid_cosine.csv, manifest.json and 1 figure(s) to {out}"
    rc = main(["overlay", "--model", TINY, "--data", data, "--split", "val", "--words", "benign", "--k", "3",
               "--n-boot", "10", "--out", str(tmp_path / "ov"), "--quiet"])
    assert rc == 0
    ov = json.loads((tmp_path / "ov" / "results.json").read_text())
    assert ov["settings"]["test_split"] == "val"
    assert ov["models"][next(iter(ov["models"]))]["words"]["benign"]["cosine_shift"]["n"] == 18
    capsys.readouterr()
    for extra, message in ((["--split", "val", "--test-split", "test"], "--split: names another split than --test-split test"),
                           (["--split", "all"], "--split: probes are fitted on one split"),
                           (["--split", "train"], "--split: is the split the probes are fitted on")):
        assert main(["features", "--model", TINY, "--data", data, *extra, "--out", str(tmp_path / "x"), "--quiet"]) == 2
        assert message in capsys.readouterr().err
