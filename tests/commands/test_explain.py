"""`medrep explain` on the command line: the table and files it writes, and method options refused before any
work, naming the flag."""
from __future__ import annotations

import json

import pytest


def test_cli_on_the_demo_cnn(tmp_path, capsys):
    from medrep.cli import main

    out = tmp_path / "ex"
    rc = main(["explain", "--model", "demo-cnn", "--methods", "gradcam,ig", "--metrics", "pointing,mass", "--limit", "6",
               "--ig-steps", "4", "--batch-size", "6", "--out", str(out), "--quiet", "--no-cache"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "gradcam" in table and "center" in table
    res = json.loads((out / "results.json").read_text())
    assert res["n_images"] == 6 and set(res["metrics"]) == {"gradcam", "ig", "random", "center"}
    assert (out / "gallery.png").exists() and (out / "explain_table.csv").exists()
    assert main(["explain", "--model", "demo-cnn", "--methods", "attention", "--limit", "2", "--out", str(out), "--quiet"]) != 0
    assert "demo-cnn" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value, message", [
    ("--gradcam-layer", "nosuch", "--gradcam-layer: model demo-vit has no layer 'nosuch'"),
    ("--ig-steps", "0", "--ig-steps: needs at least one step"),
    ("--discard-ratio", "1", "--discard-ratio: discard ratio must be in [0, 1), got 1.0"),
    ("--block", "6", "--block: model demo-vit has 6 attention blocks; block 6 does not exist"),
    ("--deletion-steps", "0", "--deletion-steps: needs at least one step"),
    ("--topk", "10,0", "--topk: top-k percentage must be in (0, 100], got 0"),
])
def test_bad_method_options_are_refused_before_any_work_naming_the_flag(flag, value, message, monkeypatch, tmp_path,
                                                                       capsys):
    from medrep.cli import main
    from medrep.explain import run as run_module

    def no_work(*args, **kwargs):
        raise AssertionError("a batch ran before the options were checked")

    monkeypatch.setattr(run_module.ExplainJob, "run", no_work)
    rc = main(["explain", "--model", "demo-vit", "--methods", "attention,rollout,gradcam,ig", "--limit", "2",
               flag, value, "--out", str(tmp_path / "ex"), "--quiet", "--no-cache"])
    assert rc == 2
    assert message in capsys.readouterr().err
