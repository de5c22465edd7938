"""`medrep align` on the command line: stitching end to end and one-line errors naming the flag."""
from __future__ import annotations

import json

import pytest

TINY = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=1&embed_dim=32&num_heads=2&num_classes=3"
SMALL = "demo?n_train=120&n_val=0&n_test=60&seed=3"  # the same data as the small_phantoms fixture


def test_cli_reports_a_wrong_text_spec_in_one_line(capsys):
    from medrep.cli import main

    rc = main(["align", "--source", TINY, "--text", "demo-cnn", "--data", SMALL, "--out", "/tmp/unused-align", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "not a text encoder" in err and err.count("\n") == 1
    rc = main(["align", "--source", TINY, "--data", SMALL, "--out", "/tmp/unused-align", "--quiet"])
    assert rc == 2 and "--target-model" in capsys.readouterr().err


def test_cli_stitching_writes_results(tmp_path, capsys):
    from medrep.cli import main

    rc = main(["align", "--source", "demo-cnn", "--target-model", "demo-cnn", "--data", SMALL, "--anchors", "20,60",
               "--n-boot", "100", "--anchor-selection", "balanced", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    d = json.loads((tmp_path / "results.json").read_text())
    assert d["anchor_counts"] == [20, 60] and d["anchor_selection"] == "balanced"
    m = d["metrics"]
    # one encoder on both sides: the naive stitch is the identity, so it must equal the target's own accuracy
    assert m["naive_accuracy"]["value"] == pytest.approx(m["target_accuracy"]["value"])
    assert m["target_accuracy"]["low"] <= m["target_accuracy"]["value"] <= m["target_accuracy"]["high"]
    assert (tmp_path / "manifest.json").exists() and (tmp_path / "accuracy_vs_anchors.png").exists()
    assert "stitched_accuracy=" in capsys.readouterr().out
