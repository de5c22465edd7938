"""`medrep overlay` on the command line: a run on twelve training items, with the settings it scaled down said in
the results and on the terminal."""
from __future__ import annotations

import json

from medrep.cli import main

SMALL = "demo?n_train=12&n_val=0&n_test=12"  # 12 training items: k=20 used to fail


def test_overlay_on_twelve_training_items_runs_and_reports_the_adapted_k(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["overlay", "--model", "demo-cnn", "--data", SMALL, "--words", "benign", "--n-boot", "20",
                 "--out", str(out), "--quiet"]) == 0
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["adapted"]["k"]["asked"] == 20 and settings["k"] < 20
    assert "k scaled down to the data" in capsys.readouterr().out
