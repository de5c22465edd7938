"""A plain CNN (microsoft/resnet-50's structure, shrunk): the attention methods are left out of the defaults and
refused when named, before any work."""
from __future__ import annotations

import pytest

from family_builders import hf_resnet
from family_helpers import DATA, explained_methods, run_every_analysis
from medrep.cli import main


@pytest.fixture(scope="module")
def spec(models_root):
    return hf_resnet(models_root)


def test_attention_methods_are_refused_before_any_work(spec, capsys, tmp_path):
    code = main(["explain", "--model", spec, "--data", DATA, "--methods", "rollout,gradcam", "--limit", "2",
                 "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no token grid" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "partial").exists()


@pytest.mark.slow
def test_every_analysis_runs(spec, capsys, tmp_path):
    results = run_every_analysis(spec, tmp_path, capsys)
    methods, skipped = explained_methods(results)
    assert methods == ["gradcam", "ig", "random", "center"]
    assert set(skipped) == {"attention", "rollout", "chefer", "chefer-lrp"}
