"""A method, an objective and an estimator registered from outside medrep reach the command line, its help
and the audit configuration; the worked examples of docs/extending.md run as written."""
from __future__ import annotations

import re
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from medrep.align.estimators import Aligner
from medrep.align.registry import ESTIMATORS, register_estimator
from medrep.audit.config import validate_config
from medrep.cli import main
from medrep.errors import MedrepError
from medrep.explain.registry import METHODS, register_method
from medrep.registry import Option, Registry
from medrep.robustness.objectives import Objective
from medrep.robustness.registry import OBJECTIVES, register_objective

DOCS = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
TINY = "demo?n_train=40&n_val=0&n_test=12&size=32"


@pytest.fixture
def plugins():
    """A throwaway method, objective and estimator, removed afterwards."""
    seen = {}

    @register_method("toy-edges", options=[Option("gain", float, 1.0, help="toy-edges: multiplier of the map")])
    def toy_edges(encoder, pixels, target, gain=1.0):
        """Horizontal intensity differences: a map that does not look at the model."""
        seen["gain"] = gain
        gray = pixels.float().mean(1)
        return gain * torch.nn.functional.pad((gray[:, :, 1:] - gray[:, :, :-1]).abs(), (0, 1))

    @register_objective("toy-pull", help="toy: pull f(x) onto the target with an L1 loss")
    class ToyPull(Objective):
        uses_target = True

        def reference(self, clean, target, labels=None):
            return target

        def loss(self, z, reference):
            return (z.float() - reference.float()).abs().sum(1)

    @register_estimator("toy-scale", help="toy: the identity times a fixed factor",
                        options=[Option("factor", float, 1.0, help="toy-scale: the factor")])
    class ToyScale(Aligner):
        def __init__(self, ridge=0.0, factor=1.0):
            super().__init__(ridge)
            self.factor = factor
            seen["factor"] = factor

        def solve(self, x, y):
            return torch.eye(x.shape[1], dtype=x.dtype) * self.factor, None

    yield seen
    METHODS.unregister("toy-edges")
    OBJECTIVES.unregister("toy-pull")
    ESTIMATORS.unregister("toy-scale")


def _help(capsys, command: str) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_registered_entries_appear_in_the_help(plugins, capsys):
    explain = _help(capsys, "explain")
    assert "toy-edges" in explain and "--toy-edges-gain" in explain and "toy-edges: multiplier of the map" in explain
    attack = _help(capsys, "attack")
    assert re.search(r"--objective \{collide,push,[^}]*toy-pull\}", attack) and "toy: pull f(x) onto the target" in attack
    align = _help(capsys, "align")
    assert "toy-scale" in align and "--toy-scale-factor" in align


def test_registered_entries_are_accepted_by_an_audit_config(plugins):
    config = validate_config({"analyses": {"robustness": {"objectives": ["collide", "toy-pull"]},
                                           "explain": {"methods": ["gradcam", "toy-edges"]},
                                           "alignment": {"estimator": "toy-scale"}}})
    assert config["analyses"]["robustness"]["objectives"] == ["collide", "toy-pull"]
    assert config["analyses"]["explain"]["methods"] == ["gradcam", "toy-edges"]
    assert config["analyses"]["alignment"]["estimator"] == "toy-scale"
    # a registered method is not a default one unless it says so
    assert "toy-edges" not in validate_config({})["analyses"]["explain"]["methods"]
    with pytest.raises(MedrepError, match=r"analyses\.alignment\.estimator: 'toy-scales' is not one of .*toy-scale"):
        validate_config({"analyses": {"alignment": {"estimator": "toy-scales"}}})


def test_unregistered_entries_are_refused_by_the_audit_config():
    with pytest.raises(MedrepError, match=r"analyses\.robustness\.objectives\[0\]"):
        validate_config({"analyses": {"robustness": {"objectives": ["toy-pull"]}}})


def test_the_audit_branches_on_metadata_not_names(plugins):
    assert OBJECTIVES.meta("toy-pull", "uses_target") is True
    targeted = OBJECTIVES.names(uses_target=True)
    assert "collide" in targeted and "toy-pull" in targeted and "push" not in targeted
    assert METHODS.names(needs_attention=True) == ("attention", "rollout", "chefer", "chefer-lrp")


@pytest.mark.slow
def test_registered_entries_run_through_the_cli(plugins, tmp_path, capsys):
    base = ["--data", TINY, "--quiet", "--cache-dir", str(tmp_path / "cache")]
    rc = main(["explain", "--model", "demo-cnn", *base, "--methods", "toy-edges", "--toy-edges-gain", "2.5",
               "--metrics", "pointing", "--limit", "4", "--no-baselines", "--out", str(tmp_path / "explain")])
    assert rc == 0 and plugins["gain"] == 2.5
    import json

    explained = json.loads((tmp_path / "explain" / "results.json").read_text())
    assert explained["methods"] == ["toy-edges"]
    rc = main(["attack", "--model", "demo-cnn", *base, "--objective", "toy-pull", "--eps", "8/255", "--attack-steps"
               if "--attack-steps" in _help(capsys, "attack") else "--steps", "2", "--limit", "4", "--noise-draws", "2",
               "--out", str(tmp_path / "attack")])
    assert rc == 0
    attacked = json.loads((tmp_path / "attack" / "results.json").read_text())
    assert attacked["config"]["objective"] == "toy-pull"
    # a targeted objective reports the match with the target, like collide
    assert attacked["results"][0]["metrics"]["match_success_rate"]["value"] is not None
    rc = main(["align", "--source", "demo-cnn", "--target", "demo-vit", *base, "--anchors", "30", "--estimator", "toy-scale",
               "--toy-scale-factor", "0.5", "--no-scale", "--n-boot", "20", "--out", str(tmp_path / "align")])
    assert rc == 0 and plugins["factor"] == 0.5
    aligned = json.loads((tmp_path / "align" / "results.json").read_text())
    assert aligned["estimator"] == "toy-scale" and aligned["options"]["estimator_options"] == {"factor": 0.5}


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
def test_the_worked_examples_in_docs_extending_run_as_written(capsys):
    blocks = _python_blocks(DOCS.read_text(encoding="utf-8"))
    assert len(blocks) == 3
    try:
        for block in blocks:
            exec(compile(block, str(DOCS), "exec"), {"__name__": "medrep_docs_example"})  # noqa: S102
        assert "saliency" in METHODS and "turn" in OBJECTIVES and "similarity" in ESTIMATORS
        out = capsys.readouterr().out
        assert "saliency" in out and "similarity" in out
    finally:
        METHODS.unregister("saliency")
        OBJECTIVES.unregister("turn")
        ESTIMATORS.unregister("similarity")


def test_registry_lookups_suggest_and_warn():
    reg = Registry("widget", param="widget")
    reg.register("sharpen", len, default=True, options=[Option("amount", float, 1.0)])
    reg.register("blur", abs)
    with pytest.raises(MedrepError, match=r"^widget: unknown widget 'sharpn' \(did you mean 'sharpen'\? choose from sharpen, blur\)"):
        reg.get("sharpn")
    assert reg.names(default=True) == ("sharpen",) and reg.names(default=False) == ("blur",)
    assert reg["blur"] is abs and list(reg) == ["sharpen", "blur"] and "blur" in reg
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg.register("blur", round)
    assert len(caught) == 1 and "registered again" in str(caught[0].message)
    assert reg.entry("sharpen").option("amount").convert("0.5") == 0.5
    with pytest.raises(MedrepError, match="^amount: expected float"):
        reg.entry("sharpen").option("amount").convert("lots")
    assert Option("flag", bool).convert("no") is False and np.isclose(Option("x", float).convert(3), 3.0)


def test_a_plugin_registered_before_the_builtins_load_comes_after_them(tmp_path, monkeypatch):
    """A plug-in imported first must not be listed before the built-ins, nor be put back by their lazy import."""
    holder = types.ModuleType("toy_widget_registry")
    holder.WIDGETS = Registry("widget", builtins=("toy_widget_builtins",))
    monkeypatch.setitem(sys.modules, "toy_widget_registry", holder)
    (tmp_path / "toy_widget_builtins.py").write_text(
        "from toy_widget_registry import WIDGETS\nWIDGETS.register('sharpen', len)\nWIDGETS.register('blur', abs)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_widget_builtins", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        holder.WIDGETS.register("blur", round)  # replaces a built-in on purpose
    holder.WIDGETS.register("emboss", min)
    assert list(holder.WIDGETS) == ["sharpen", "blur", "emboss"]
    assert holder.WIDGETS["blur"] is round and len(caught) == 1
