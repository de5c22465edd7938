"""`medrep audit` on the command line: a missing config file and data without the configured split are one line
and exit code 2, before any work."""
from __future__ import annotations


def test_missing_config_file(tmp_path, capsys, no_work):
    from medrep.cli import main

    assert main(["audit", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_data_without_the_splits_is_refused_in_one_line(tmp_path, capsys):
    from medrep.cli import main

    cfg = tmp_path / "audit.yaml"
    cfg.write_text("data: demo?n_train=6&n_val=0&n_test=6&size=32\nmodels: [demo-cnn]\ntest_split: holdout\n")
    assert main(["audit", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "test_split: the data has no 'holdout' split (available: train, test)" in err, err
