"""Library errors name the parameter; the command line reports it as its flag, the audit as its YAML path.
The analyses never import the command line."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medrep.audit.config import audit_place
from medrep.errors import MedrepError, Param, cli_place

TINY = "demo?n_train=20&n_val=0&n_test=12&size=32"


def test_a_parameter_is_placed_by_each_front_end():
    err = MedrepError("must be at least 1", where=Param("noise_draws"))
    assert str(err) == "noise_draws: must be at least 1"
    assert str(err.placed(cli_place(err.where))) == "--noise-draws: must be at least 1"
    assert str(err.placed(audit_place("robustness", err.where))) == "analyses.robustness.noise_draws: must be at least 1"
    # a parameter the audit has no key for is named beside its section; a top-level key as itself
    assert audit_place("explain", Param("block")) == "analyses.explain (block)"
    assert audit_place("alignment", Param("batch_size")) == "batch_size"
    assert audit_place("features", Param("layer")) == "analyses.features.layers"  # a list key is its flag's plural
    assert cli_place(Param("target/text")) == "--target/--text"
    # a file or a spec is where it is, for every front end
    assert cli_place("scan.dcm") == "scan.dcm" and audit_place("explain", "scan.dcm") == "scan.dcm"
    # the placed error keeps its type and its message
    from medrep.errors import SpecError

    placed = SpecError("unknown option", where=Param("data")).placed("--data")
    assert isinstance(placed, SpecError) and placed.detail == "unknown option" and placed.where == "--data"


def test_the_analyses_import_nothing_from_the_command_line():
    code = ("import sys, medrep.robustness, medrep.explain, medrep.align, medrep.features, medrep.audit; "
            "print([m for m in sys.modules if m == 'medrep.commands' or m.startswith('medrep.commands.')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_the_same_error_names_the_yaml_path_in_an_audit_and_the_flag_on_the_cli(tmp_path, capsys):
    from medrep.audit import run_audit
    from medrep.cli import main

    off = {"enabled": False}
    config = {"data": TINY, "models": ["demo-cnn"], "text": None, "n_boot": 10,
              "analyses": {"robustness": off, "explain": off, "overlay": off, "alignment": off,
                           "features": {"layers": ["no_such_module"], "shots": [1], "projections": [], "n_permutations": 0}}}
    results = run_audit(config, tmp_path / "audit", cache_dir=str(tmp_path / "cache"), device="cpu")
    audit_error = results["features"]["error"]
    assert audit_error.startswith("analyses.features.layers: ") and "no_such_module" in audit_error, audit_error
    rc = main(["features", "--model", "demo-cnn", "--data", TINY, "--layer", "no_such_module", "--shots", "1", "--projection", "none",
               "--n-permutations", "0", "--quiet", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "cli")])
    assert rc == 2
    cli_error = capsys.readouterr().err.strip()
    assert cli_error == "medrep features: error: " + audit_error.replace("analyses.features.layers", "--layer"), cli_error
    assert json.loads((tmp_path / "audit" / "results.json").read_text())["sections"][0]["error"] == audit_error


@pytest.mark.slow
def test_an_explain_setting_is_named_by_its_yaml_path_in_an_audit_and_its_flag_on_the_cli(tmp_path, capsys):
    from medrep.audit import run_audit
    from medrep.cli import main

    off = {"enabled": False}
    config = {"data": TINY, "models": ["demo-cnn"], "text": None, "n_boot": 10,
              "analyses": {"robustness": off, "features": off, "overlay": off, "alignment": off,
                           "explain": {"methods": ["gradcam"], "metrics": ["pointing"], "limit": 2, "sanity_topk": 0}}}
    results = run_audit(config, tmp_path / "audit", cache_dir=str(tmp_path / "cache"), device="cpu")
    audit_error = results["explain"]["error"]
    assert audit_error == "analyses.explain.sanity_topk: top-k percentage must be in (0, 100], got 0", audit_error
    rc = main(["explain", "--model", "demo-cnn", "--data", TINY, "--methods", "gradcam", "--metrics", "pointing",
               "--limit", "2", "--sanity-topk", "0", "--quiet", "--cache-dir", str(tmp_path / "cache"),
               "--out", str(tmp_path / "cli")])
    assert rc == 2
    cli_error = capsys.readouterr().err.strip().splitlines()[-1]
    assert cli_error == "medrep explain: error: --sanity-topk: top-k percentage must be in (0, 100], got 0", cli_error
