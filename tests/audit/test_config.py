"""The audit config is refused before any work starts: the key path, one line, exit code 2."""
from __future__ import annotations

import pytest
import yaml

from medrep.audit import default_config, load_config, validate_config
from medrep.errors import MedrepError


def _cli(tmp_path, text: str, capsys):
    from medrep.cli import main

    cfg = tmp_path / "audit.yaml"
    cfg.write_text(text)
    out = tmp_path / "out"
    rc = main(["audit", str(cfg), "--out", str(out)])
    captured = capsys.readouterr()
    assert not out.exists(), "the output folder was created before the config was validated"
    return rc, captured


@pytest.mark.parametrize("text, path, hint", [
    ("modles: [demo-cnn]\n", "modles", "did you mean 'models'"),
    ("analyses:\n  robustnes:\n    steps: 3\n", "analyses.robustnes", "did you mean 'robustness'"),
    ("analyses:\n  robustness:\n    atack_steps: 3\n", "analyses.robustness.atack_steps", "did you mean 'attack_steps'"),
    ("analyses:\n  alignment:\n    anchors: [10, 25]\n    estimater: ortho\n", "analyses.alignment.estimater", "did you mean 'estimator'"),
    ("analyses:\n  robustness:\n    setps: 3\n", "analyses.robustness.setps", "did you mean 'attack_steps'"),  # old name, misspelt
    ("analyses:\n  explain:\n    setps: 3\n", "analyses.explain.setps", "did you mean 'deletion_steps'"),
])
def test_unknown_key_is_refused_with_its_path(tmp_path, capsys, no_work, text, path, hint):
    rc, captured = _cli(tmp_path, text, capsys)
    assert rc == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("medrep audit: error: ") and "audit.yaml" in lines[0]
    assert f"{path}: unknown key" in lines[0] and hint in lines[0]


@pytest.mark.parametrize("text, path, expected", [
    ("analyses:\n  robustness:\n    attack_steps: ten\n", "analyses.robustness.attack_steps", "expected an integer, got str"),
    ("seed: true\n", "seed", "expected an integer, got a boolean"),
    ("models: demo-cnn\n", "models", "expected a list, got str"),
    ("analyses:\n  robustness:\n    eps: [1/255]\n", "analyses.robustness.eps[0]", "expected an integer or a number, got str"),
    ("analyses:\n  robustness:\n    norm: l3\n", "analyses.robustness.norm", "'l3' is not one of linf, l2"),
    ("analyses:\n  features: 3\n", "analyses.features", "expected a mapping, got int"),
    ("analyses:\n  explain:\n    enabled: 'yes'\n", "analyses.explain.enabled", "expected true/false, got str"),
    ("n_boot: 2\n", "n_boot", "use at least 10"),
    ("analyses:\n  robustness:\n    attack_steps: 0\n", "analyses.robustness.attack_steps", "must be at least 1, got 0"),
    ("analyses:\n  alignment:\n    anchors: [10, -5]\n", "analyses.alignment.anchors[1]", "must be at least 1, got -5"),
])
def test_wrong_type_or_value_is_refused_with_its_path(tmp_path, capsys, no_work, text, path, expected):
    rc, captured = _cli(tmp_path, text, capsys)
    assert rc == 2 and "Traceback" not in captured.err
    line = captured.err.strip()
    assert "\n" not in line and f"{path}: {expected}" in line, line


@pytest.mark.parametrize("text, expected", [
    ("!!python/name:os.system\n", "not valid YAML"),  # safe_load: no python tags (code execution: test_safety.py)
    ("- demo-cnn\n", "expected a mapping, got list"),
    ("models: [demo-cnn, demo-cnn]\n", "models: a model is listed twice"),
    ("analyses:\n  explain:\n    models: [demo-vit2]\n", "analyses.explain.models[0]: 'demo-vit2' is not one of the audit's models"),
])
def test_unsafe_or_inconsistent_configs_are_refused(tmp_path, capsys, no_work, text, expected):
    rc, captured = _cli(tmp_path, text, capsys)
    assert rc == 2 and expected in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_defaults_fill_in_and_validation_is_idempotent(tmp_path):
    cfg = tmp_path / "a.yaml"
    cfg.write_text("models: [demo-cnn]\nanalyses:\n  robustness:\n    attack_steps: 3\n")
    config = load_config(cfg)
    assert config["analyses"]["robustness"]["attack_steps"] == 3 and config["analyses"]["robustness"]["norm"] == "linf"
    assert config["text"] == "minilm" and config["n_boot"] is None
    assert validate_config(config) == config
    for fast in (False, True):
        d = default_config(seed=1, fast=fast)
        assert validate_config(d) == d
    with pytest.raises(MedrepError, match=r"^analyses\.robustness\.eps\[1\]: ε must lie in"):
        validate_config({"analyses": {"robustness": {"eps": [0.01, 4]}}})
    # an L2 ε is a distance over all pixels: 4 is an ordinary budget there, a negative one is not
    assert validate_config({"analyses": {"robustness": {"eps": [0.5, 4], "norm": "l2"}}})["analyses"]["robustness"]["eps"] == [0.5, 4]
    with pytest.raises(MedrepError, match=r"^analyses\.robustness\.eps\[0\]: an L2 ε must be positive"):
        validate_config({"analyses": {"robustness": {"eps": [-1.0], "norm": "l2"}}})
    assert yaml.safe_load(yaml.safe_dump(default_config())) == default_config()
