"""The audit's "Who does it fail for?" section: config keys, the stage on its own data or the audit's, the
scorecard's largest gap, and attacks / explanations by subgroup when the audit's data has the attributes."""
from __future__ import annotations

import json

import pytest

from medrep.audit import run_audit
from medrep.audit.config import default_config, validate_config
from medrep.errors import MedrepError

ATTR_DATA = "demo?attributes=site,sex&n_train=60&n_val=0&n_test=60&size=32"
OFF = {"enabled": False}


def _config(**overrides):
    config = {"title": "subgroups", "data": ATTR_DATA, "models": ["demo-cnn"], "text": None, "n_boot": 50,
              "by": ["site", "sex"], "min_group_size": 10,
              "analyses": {"robustness": OFF, "explain": OFF, "features": OFF, "overlay": OFF, "alignment": OFF,
                           "subgroups": {"n_permutations": 50, "probe_permutations": 3}}}
    config.update(overrides)
    return config


def test_config_keys_and_the_demo_default():
    config = validate_config({"by": ["sex", "age"], "age_bins": [18, 65]})
    assert config["by"] == ["sex", "age"] and config["min_group_size"] == 30
    assert config["analyses"]["subgroups"]["data"] is None
    with pytest.raises(MedrepError, match="listed twice"):
        validate_config({"by": ["sex", "sex"]})
    with pytest.raises(MedrepError, match="age_bins"):
        validate_config({"age_bins": [65, 18]})
    demo = default_config()
    assert demo["by"] == ["site", "sex"] and demo["data"] == "demo"  # the demo's other figures keep their data
    assert "attributes=site,sex" in demo["analyses"]["subgroups"]["data"]


@pytest.mark.slow
def test_audit_subgroup_section_scorecard_and_attack_by_subgroup(tmp_path):
    config = _config(analyses={**_config()["analyses"],
                               "robustness": {"objectives": ["collide"], "eps": [8 / 255], "steps": 1, "limit": 24,
                                              "noise_draws": 1, "noise_sigma": [0.01]}})
    results = run_audit(config, tmp_path / "a")
    sub = results["subgroups"]
    assert {"site", "sex"} <= set(sub["subgroups"])
    site = sub["subgroups"]["site"]
    assert site["groups"]["A"]["n"] + site["groups"]["B"]["n"] == 60
    assert "demo-cnn/linear_probe_accuracy" in site["gap_p"] and "demo-cnn" in site["separability"]
    # the attack's figures by subgroup (the audit's data carries the attributes)
    attack = results["robustness"]["demo-cnn"]["collide"]["subgroups"]["site"]
    assert "clean_accuracy" in attack["gap"]
    card = results["scorecard"]["demo-cnn"]["subgroups"]
    gaps = [v for a in sub["subgroups"].values() if isinstance(a, dict) and "gap" in a
            for k, v in a["gap"].items() if k.endswith("linear_probe_accuracy") and v is not None]
    assert card["value"] == pytest.approx(max(gaps))
    html = (tmp_path / "a" / "report.html").read_text()
    assert "5 · Who does it fail for?" in html and "Separability and shortcut check" in html
    assert "largest gap between subgroups" in html
    assert (tmp_path / "a" / "subgroups" / "forest_demo-cnn.png").exists()
    assert any(t["section"] == "subgroups" for t in results["tables"])


def test_audit_names_a_missing_attribute_in_the_section(tmp_path):
    results = run_audit(_config(data="demo?n_train=30&n_val=0&n_test=30&size=32", by=["race"]), tmp_path / "b")
    assert "no attribute 'race'" in results["subgroups"]["error"]
    assert "subgroups" not in results["scorecard"]["demo-cnn"]
